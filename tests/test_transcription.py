"""Copying the book does not pass an exercise: at most 30 % of the points for any chapter's code.

For every exercise and every chapter up to its own, the submission is the release notebook whose
answer cells hold the template followed by that chapter's top-level imports, constants, functions
and classes (``tests/transcription.py``). It is graded through nbgrader's real autograde, like a
class. The figures are also written to ``_build/transcription/<assignment>.json``.
"""

from __future__ import annotations

import csv
import json

import nbformat
import pytest
from conftest import ASSIGNMENTS, ROOT
from transcription import chapter_copy, chapters_up_to, copied_submission

from autograder.grade import grade_all

MAX_FRACTION = 0.30
PAIRS = [(assignment, chapter) for assignment in ASSIGNMENTS for chapter in chapters_up_to(assignment)]


@pytest.fixture(scope="module")
def fractions(tmp_path_factory):
    """``fractions(assignment)``: {chapter: fraction of the points its copy earns}, graded once each."""
    graded: dict[str, dict[str, float]] = {}

    def get(assignment: str) -> dict[str, float]:
        if assignment not in graded:
            graded[assignment] = grade_copies(assignment, tmp_path_factory.mktemp(assignment))
            record(assignment, graded[assignment])
        return graded[assignment]

    return get


def grade_copies(assignment: str, tmp_path) -> dict[str, float]:
    """Grade one copied submission per chapter up to ``assignment``'s, through nbgrader's autograde."""
    chapters = chapters_up_to(assignment)
    for chapter in chapters:
        folder = tmp_path / "copies" / f"copy-{chapter[:4]}" / assignment
        folder.mkdir(parents=True)
        nbformat.write(copied_submission(assignment, chapter), folder / f"{assignment}.ipynb")
    grade_all(tmp_path / "copies", tmp_path / "out", [assignment], workers=2, progress=lambda _: None)
    with open(tmp_path / "out" / "grades.csv") as handle:
        rows = {r["student_id"].removeprefix("copy-"): r for r in csv.DictReader(handle)}
    figures = {}
    for chapter in chapters:
        row = rows[chapter[:4]]
        assert row["status"] == "graded", f"{assignment} <- {chapter}: {row['status']}: {row['detail']}"
        figures[chapter] = float(row["score"]) / float(row["max_score"])
    return figures


def record(assignment: str, figures: dict[str, float]) -> None:
    """Write the figures to ``_build/transcription/<assignment>.json`` (read by the closing notes)."""
    path = ROOT / "_build" / "transcription" / f"{assignment}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({chapter: round(f, 3) for chapter, f in figures.items()}, indent=2))


@pytest.mark.parametrize("chapter", sorted({c for _, c in PAIRS}))
def test_every_chapter_copy_runs(chapter):
    """The copy has functions, and runs as a module: otherwise the test would measure nothing."""
    code = chapter_copy(chapter)
    assert "def " in code, f"nothing to copy from {chapter}"
    namespace: dict = {}
    exec(compile(code, f"<copy of {chapter}>", "exec"), namespace)  # noqa: S102 - the book's own code
    defined = [name for name in namespace if not name.startswith("__")]
    assert len(defined) >= 3, f"the copy of {chapter} defines almost nothing: {defined}"


@pytest.mark.parametrize(("assignment", "chapter"), PAIRS, ids=[f"{a}-{c[:4]}" for a, c in PAIRS])
def test_copying_a_chapter_earns_at_most_30_percent(fractions, assignment, chapter):
    earned = fractions(assignment)[chapter]
    assert earned <= MAX_FRACTION, (
        f"copying {chapter}'s code into {assignment} earns {earned:.0%} of the points "
        f"(at most {MAX_FRACTION:.0%} may come from restating the book)")
