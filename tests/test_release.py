"""The release pipeline: exercises/ is exactly what `python -m autograder release` makes from solutions/."""

from __future__ import annotations

import filecmp
import re
import subprocess

import nbformat
import pytest
from conftest import ASSIGNMENTS, EXERCISES, ROOT, SOLUTIONS, nbgrader_meta

from autograder.release import generate_release

ANSWER_KEYS = {"grade", "grade_id", "locked", "schema_version", "solution", "task"}


def test_every_assignment_is_released():
    released = sorted(p.name for p in EXERCISES.iterdir() if p.is_dir())
    assert released == ASSIGNMENTS, "exercises/ and solutions/ hold different assignments"


@pytest.mark.parametrize("assignment_id", ASSIGNMENTS)
def test_release_has_no_drift(assignment_id, tmp_path):
    fresh = generate_release(assignment_id, tmp_path)
    comparison = filecmp.dircmp(fresh, EXERCISES / assignment_id)
    assert not (comparison.left_only or comparison.right_only or comparison.diff_files), (
        f"exercises/{assignment_id} differs from a fresh release ({comparison.diff_files or ''} "
        f"{comparison.left_only or ''} {comparison.right_only or ''}): run `python -m autograder release`"
    )
    for name in comparison.common_files:
        assert (fresh / name).read_bytes() == (EXERCISES / assignment_id / name).read_bytes()


@pytest.mark.parametrize("assignment_id", ASSIGNMENTS)
def test_source_notebook_is_clean_and_valid(assignment_id):
    path = SOLUTIONS / assignment_id / f"{assignment_id}.ipynb"
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata.kernelspec.name == "python3"
    grade_ids = []
    for index, cell in enumerate(notebook.cells):
        where = f"{assignment_id} cell {index}"
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{where} carries outputs"
        meta = nbgrader_meta(cell)
        if not meta:
            continue
        assert set(meta) >= ANSWER_KEYS, f"{where}: nbgrader metadata lacks {ANSWER_KEYS - set(meta)}"
        assert meta["schema_version"] == 3, f"{where}: nbgrader schema must be 3"
        grade_ids.append(meta["grade_id"])
        if meta["solution"] and cell.cell_type == "code":
            assert "### BEGIN SOLUTION" in cell.source and "### END SOLUTION" in cell.source, (
                f"{where}: an answer cell without solution markers is replaced whole by the stub")
            assert not meta["locked"], f"{where}: answer cells must not be locked"
        if meta["grade"] and not meta["solution"]:
            assert meta["locked"] and meta.get("points", 0) > 0, f"{where}: test cells are locked and score"
            markers = re.findall(r"### (BEGIN|END) HIDDEN TESTS", cell.source)
            assert markers == ["BEGIN", "END"] * (len(markers) // 2), f"{where}: unbalanced hidden tests"
        if "BEGIN HIDDEN TESTS" in cell.source:
            assert meta["grade"], f"{where}: hidden tests outside a test cell would be shown"
    assert len(grade_ids) == len(set(grade_ids)), f"{assignment_id}: duplicate grade_id"
    first_code = next(c for c in notebook.cells if c.cell_type == "code")
    assert nbgrader_meta(first_code).get("locked") and not nbgrader_meta(first_code).get("solution"), (
        f"{assignment_id}: the first code cell must be the locked setup cell")


@pytest.mark.parametrize("assignment_id", ASSIGNMENTS)
def test_release_hides_solutions_and_hidden_tests(assignment_id):
    text = (EXERCISES / assignment_id / f"{assignment_id}.ipynb").read_text()
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert marker not in text, f"exercises/{assignment_id} leaks '{marker}'"
    assert "raise NotImplementedError()" in text


def test_no_gradebook_in_repository():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout
    assert not re.search(r"(^|/)gradebook\.db$", tracked, re.MULTILINE)
    strays = [p for folder in (SOLUTIONS, EXERCISES) for p in folder.rglob("gradebook.db")]
    assert not strays, f"stray gradebooks: {strays}"


def test_nbgrader_cli_from_any_directory_uses_the_course_config():
    """Run from inside solutions/<id>, nbgrader must not create a gradebook there."""
    folder = SOLUTIONS / ASSIGNMENTS[0]
    bin_dir = ROOT / ".venv" / "bin"
    completed = subprocess.run([str(bin_dir / "nbgrader"), "db", "student", "list"], cwd=folder,
                               capture_output=True, text=True, env={"PATH": f"{bin_dir}:/usr/bin:/bin"})
    assert completed.returncode == 0, completed.stderr
    assert "No nbgrader_config.py file found" not in completed.stderr
    assert not (folder / "gradebook.db").exists()
    assert (ROOT / "grading" / "gradebook.db").exists()
