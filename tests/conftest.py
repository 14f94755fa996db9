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


# Modules whose tests share a module-scoped fixture per assignment: group them by assignment.
PER_ASSIGNMENT = {"test_transcription", "test_other_solutions"}
# Modules that share one resource: the built book (one build at a time in _build/).
SHARED = {"test_book": "book", "test_browser_book": "book"}
# Modules whose tests are independent of one another: no group.
UNGROUPED = {"test_seeds"}


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook, which reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Keep tests that share an expensive fixture on one xdist worker (``--dist loadgroup``).

    A module-scoped fixture (the book build, a graded class) runs once per worker that needs it, so
    such tests are grouped: by module, or by module and assignment where the fixture caches per
    assignment. Independent tests (a chapter executed with another seed) spread over the workers.
    """
    for item in items:
        module = getattr(getattr(item, "module", None), "__name__", None)
        if module is None or module in UNGROUPED:
            continue
        params = getattr(item, "callspec", None)
        assignment = params.params.get("assignment") if params else None
        if module in PER_ASSIGNMENT and assignment:
            group = f"{module}-{assignment}"
        else:
            group = SHARED.get(module, module)
        item.add_marker(pytest.mark.xdist_group(group))


def pytest_collection_finish(session: pytest.Session) -> None:
    """Fail early, on an xdist worker, if pytest-xdist did not apply the groups above (pytest 9.2
    silently stops it, pytest-dev/pytest-xdist#1386: every grouped fixture then runs on both
    workers and the suite takes minutes longer)."""
    if not getattr(session.config.option, "loadgroup", False):
        return
    grouped = [item for item in session.items if item.get_closest_marker("xdist_group")]
    if grouped and not any("@" in item.nodeid for item in grouped):
        raise pytest.UsageError("pytest-xdist ignored the xdist_group marks: see tests/conftest.py")
