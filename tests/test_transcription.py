"""Copying the book does not pass an exercise: at most 30 % of the points for any chapter's code.

For every exercise and every chapter up to its own, the submission is the release notebook whose
answer cells hold the template followed by that chapter's top-level imports, constants, functions
and classes (``tests/transcription.py``). It is graded through nbgrader's real autograde, like a
class. The figures are also written to ``_build/transcription.json``.
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
def fractions(tmp_path_factory) -> dict[tuple[str, str], float]:
    submissions = tmp_path_factory.mktemp("copies")
    for assignment, chapter in PAIRS:
        folder = submissions / f"copy-{chapter[:4]}" / assignment
        folder.mkdir(parents=True)
        nbformat.write(copied_submission(assignment, chapter), folder / f"{assignment}.ipynb")
    out = tmp_path_factory.mktemp("graded")
    grade_all(submissions, out, workers=2, progress=lambda _: None)
    with open(out / "grades.csv") as handle:
        rows = list(csv.DictReader(handle))
    by_pair = {(r["assignment_id"], r["student_id"].removeprefix("copy-")): r for r in rows}
    figures = {}
    for assignment, chapter in PAIRS:
        row = by_pair[(assignment, chapter[:4])]
        assert row["status"] == "graded", f"{assignment} <- {chapter}: {row['status']}: {row['detail']}"
        figures[(assignment, chapter)] = float(row["score"]) / float(row["max_score"])
    (ROOT / "_build").mkdir(exist_ok=True)
    (ROOT / "_build" / "transcription.json").write_text(json.dumps(
        {f"{a} <- {c}": round(f, 3) for (a, c), f in figures.items()}, indent=2))
    return figures


def test_every_chapter_has_code_to_copy():
    for chapter in {c for _, c in PAIRS}:
        assert "def " in chapter_copy(chapter), f"nothing to copy from {chapter}: the test would be vacuous"


@pytest.mark.parametrize(("assignment", "chapter"), PAIRS, ids=[f"{a}-{c[:4]}" for a, c in PAIRS])
def test_copying_a_chapter_earns_at_most_30_percent(fractions, assignment, chapter):
    earned = fractions[(assignment, chapter)]
    assert earned <= MAX_FRACTION, (
        f"copying {chapter}'s code into {assignment} earns {earned:.0%} of the points "
        f"(at most {MAX_FRACTION:.0%} may come from restating the book)")
