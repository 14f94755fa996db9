"""Shared fixtures and helpers for the course's tests."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
EXERCISES = ROOT / "exercises"
ASSIGNMENTS = sorted(p.name for p in SOLUTIONS.iterdir() if (p / f"{p.name}.ipynb").is_file())


def source_notebook(assignment_id: str) -> nbformat.NotebookNode:
    return nbformat.read(SOLUTIONS / assignment_id / f"{assignment_id}.ipynb", as_version=4)


def release_notebook(assignment_id: str) -> nbformat.NotebookNode:
    return nbformat.read(EXERCISES / assignment_id / f"{assignment_id}.ipynb", as_version=4)


def nbgrader_meta(cell: nbformat.NotebookNode) -> dict:
    return cell.metadata.get("nbgrader", {})


def answer_code(source: str) -> str:
    """The source of an answer cell as a student would write it: solution markers removed."""
    return re.sub(r"^\s*### (BEGIN|END) SOLUTION\s*\n", "", source, flags=re.MULTILINE)


def solved_release(assignment_id: str) -> nbformat.NotebookNode:
    """The release notebook with every answer cell filled in from the source: a perfect student."""
    answers = {nbgrader_meta(c)["grade_id"]: answer_code(c.source)
               for c in source_notebook(assignment_id).cells if nbgrader_meta(c).get("solution")}
    notebook = copy.deepcopy(release_notebook(assignment_id))
    for cell in notebook.cells:
        grade_id = nbgrader_meta(cell).get("grade_id")
        if nbgrader_meta(cell).get("solution") and grade_id in answers:
            cell.source = answers[grade_id]
    return notebook


@pytest.fixture(scope="session")
def assignments() -> list[str]:
    return ASSIGNMENTS
