"""Autograder self-test through nbgrader's real autograde: solutions score full marks, releases zero."""

from __future__ import annotations

import csv

import nbformat
import pytest
from conftest import ASSIGNMENTS, SOLUTIONS, release_notebook, solved_release

from autograder.grade import grade_all


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    submissions = tmp_path_factory.mktemp("submissions")
    for assignment_id in ASSIGNMENTS:
        for student, notebook in (
            ("source", nbformat.read(SOLUTIONS / assignment_id / f"{assignment_id}.ipynb", as_version=4)),
            ("solved", solved_release(assignment_id)),
            ("untouched", release_notebook(assignment_id)),
        ):
            folder = submissions / student / assignment_id
            folder.mkdir(parents=True)
            nbformat.write(notebook, folder / f"{assignment_id}.ipynb")
    out = tmp_path_factory.mktemp("out")
    grade_all(submissions, out, workers=2, progress=lambda _: None)
    with open(out / "grades.csv") as handle:
        return {(r["student_id"], r["assignment_id"]): r for r in csv.DictReader(handle)}


@pytest.mark.parametrize("assignment_id", ASSIGNMENTS)
@pytest.mark.parametrize("student", ["source", "solved"])
def test_solution_scores_full_marks(rows, student, assignment_id):
    row = rows[(student, assignment_id)]
    assert row["status"] == "graded", row["detail"]
    assert float(row["max_score"]) > 0
    assert float(row["score"]) == float(row["max_score"]), row["detail"]


@pytest.mark.parametrize("assignment_id", ASSIGNMENTS)
def test_untouched_release_scores_zero(rows, assignment_id):
    row = rows[("untouched", assignment_id)]
    assert row["status"] == "graded", row["detail"]
    assert float(row["score"]) == 0.0, f"an empty notebook earned points: {row}"
