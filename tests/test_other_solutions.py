"""Correct solutions written another way earn full marks; plausible mistakes lose the points they should.

For every exercise, ``tests/other_solutions/<id>.py`` holds

- ``CORRECT``: ``{answer grade_id: source}``, an independent correct answer for every answer cell, in a
  style different from the course's solution (einsum, loops, ``torch.where``, a large negative fill,
  ``unflatten``/``permute``, a preallocated buffer, ...);
- ``WRONG``: ``{name: ({answer grade_id: source}, [test grade_ids that must score 0])}``, plausible
  mistakes; each changes only the answer cells it names, the others come from ``CORRECT``.

Each variant is the SOURCE notebook (visible and hidden tests present) with those answer cells
replaced, executed in a fresh kernel. A test cell passes as nbgrader scores it: no ``error`` output and
nothing written to ``stderr``. The correct variant must pass every test cell. A wrong one must fail
exactly the listed cells (one mistake, one loss: a later task's tests use reference helpers, so a bug
costs only the points of the cells that test it) and pass every other one.
"""

from __future__ import annotations

import copy
import importlib

import nbformat
import pytest
from conftest import ASSIGNMENTS, ROOT, answer_code, nbgrader_meta, source_notebook
from nbclient import NotebookClient

MODULES = {assignment: importlib.import_module(f"other_solutions.{assignment}") for assignment in ASSIGNMENTS}
MISTAKES = [(assignment, name) for assignment, module in MODULES.items() for name in module.WRONG]


def answer_ids(notebook: nbformat.NotebookNode) -> list[str]:
    return [nbgrader_meta(c)["grade_id"] for c in notebook.cells if nbgrader_meta(c).get("solution")]


def graded_ids(notebook: nbformat.NotebookNode) -> list[str]:
    return [nbgrader_meta(c)["grade_id"] for c in notebook.cells
            if nbgrader_meta(c).get("grade") and not nbgrader_meta(c).get("solution")]


def build_variant(assignment: str, answers: dict[str, str]) -> nbformat.NotebookNode:
    """The source notebook with the named answer cells replaced (whole cell) by ``answers``."""
    notebook = copy.deepcopy(source_notebook(assignment))
    unknown = set(answers) - set(answer_ids(notebook))
    assert not unknown, f"{assignment}: no answer cells named {sorted(unknown)}"
    for cell in notebook.cells:
        meta = nbgrader_meta(cell)
        if meta.get("solution") and meta["grade_id"] in answers:
            cell.source = answers[meta["grade_id"]]
    return notebook


def failure(cell: nbformat.NotebookNode) -> str | None:
    """Why nbgrader would give this test cell 0 points (an error or stderr output), or None."""
    for output in cell.get("outputs", []):
        if output.output_type == "error":
            return f"{output.ename}: {output.evalue}"
        if output.output_type == "stream" and output.name == "stderr":
            return f"stderr: {output.text.strip()[:500]}"
    return None


def run_variant(assignment: str, answers: dict[str, str]) -> dict[str, str | None]:
    """Execute the variant in a fresh kernel: {test grade_id: failure message, or None if it passed}."""
    notebook = build_variant(assignment, answers)
    NotebookClient(notebook, timeout=120, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(ROOT / "solutions" / assignment)}}).execute()
    tests = set(graded_ids(notebook))
    return {nbgrader_meta(c)["grade_id"]: failure(c) for c in notebook.cells
            if nbgrader_meta(c).get("grade_id") in tests}


@pytest.fixture(scope="module")
def correct_runs():
    """The CORRECT variant of each exercise, executed at most once per module."""
    runs: dict[str, dict[str, str | None]] = {}

    def get(assignment: str) -> dict[str, str | None]:
        if assignment not in runs:
            runs[assignment] = run_variant(assignment, MODULES[assignment].CORRECT)
        return runs[assignment]

    return get


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_data_covers_every_answer_cell(assignment):
    notebook = source_notebook(assignment)
    module = MODULES[assignment]
    originals = {nbgrader_meta(c)["grade_id"]: answer_code(c.source) for c in notebook.cells
                 if nbgrader_meta(c).get("solution")}
    assert sorted(module.CORRECT) == sorted(originals), "CORRECT must answer every answer cell"
    for grade_id, source in module.CORRECT.items():
        assert source.strip() != originals[grade_id].strip(), f"{grade_id}: the course's own solution"
        assert "### BEGIN SOLUTION" not in source, f"{grade_id}: solution markers in CORRECT"
    assert 4 <= len(module.WRONG) <= 20, "4 to 20 plausible mistakes per exercise"
    tests = set(graded_ids(notebook))
    for name, (answers, must_fail) in module.WRONG.items():
        assert answers and set(answers) <= set(originals), f"{name}: unknown answer cells"
        assert must_fail and set(must_fail) <= tests, f"{name}: unknown test cells {set(must_fail) - tests}"
        for grade_id, source in answers.items():
            assert source != module.CORRECT[grade_id], f"{name}: {grade_id} is the same as CORRECT"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_other_correct_solution_gets_full_marks(assignment, correct_runs):
    results = correct_runs(assignment)
    assert results, f"{assignment}: no graded test cells"
    failed = {grade_id: why for grade_id, why in results.items() if why is not None}
    assert not failed, f"{assignment}: a correct solution lost points in {failed}"


@pytest.mark.parametrize(("assignment", "mistake"), MISTAKES, ids=[f"{a}-{m}" for a, m in MISTAKES])
def test_plausible_mistake_loses_its_points(assignment, mistake, correct_runs):
    module = MODULES[assignment]
    answers, must_fail = module.WRONG[mistake]
    # The listed cells pass with the correct answers, so a failure below is the mistake's doing.
    baseline = correct_runs(assignment)
    assert all(baseline[t] is None for t in must_fail), f"{assignment}: CORRECT fails {must_fail}"
    results = run_variant(assignment, {**module.CORRECT, **answers})
    kept = [t for t in must_fail if results[t] is None]
    assert not kept, f"{assignment}: the mistake {mistake!r} kept the points of {kept}"
    cascaded = {t: why for t, why in results.items() if why is not None and t not in must_fail}
    assert not cascaded, (f"{assignment}: the mistake {mistake!r} also cost cells that do not test it "
                          f"(one mistake, one loss): {cascaded}")
