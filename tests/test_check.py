"""The student self-check: an honest exit status and a hint per failing visible test."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys

import nbformat
import pytest
from conftest import ASSIGNMENTS, EXERCISES, ROOT, solved_release

from autograder.check import CheckReport, TestOutcome, report


def check(path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autograder", "check", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("assignment_id", ASSIGNMENTS)
def test_untouched_exercise_fails_with_a_reason(assignment_id):
    completed = check(EXERCISES / assignment_id / f"{assignment_id}.ipynb")
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert "FAIL" in completed.stdout and "not answered yet" in completed.stdout


@pytest.mark.parametrize("assignment_id", ASSIGNMENTS)
def test_solved_exercise_passes(assignment_id, tmp_path):
    path = tmp_path / f"{assignment_id}.ipynb"
    nbformat.write(solved_release(assignment_id), path)
    completed = check(path)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "FAIL" not in completed.stdout


def test_missing_notebook_is_a_usage_error(tmp_path):
    completed = check(tmp_path / "nope.ipynb")
    assert completed.returncode == 2 and "no notebook" in completed.stderr


def test_report_is_clean_and_notes_an_edited_test_cell(tmp_path):
    """Nothing but the report (the kernel talks over ipc: no TCP warning after it), and a test cell the
    student edited is named: grading restores the original."""
    notebook = solved_release(ASSIGNMENTS[0])
    test_cell = next(c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade")
                     and not c.metadata["nbgrader"].get("solution"))
    test_cell.source += "\npass  # the student's edit"
    path = tmp_path / f"{ASSIGNMENTS[0]}.ipynb"
    nbformat.write(notebook, path)
    completed = check(path)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert completed.stderr == "", completed.stderr
    assert "This test cell was edited" in completed.stdout, completed.stdout


def test_an_answer_cell_that_does_not_run_is_named(tmp_path):
    """A syntax error in an answer cell is reported there, not only as NameErrors in the tests."""
    notebook = solved_release(ASSIGNMENTS[0])
    answer = next(c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("solution"))
    answer.source += "\n)"
    path = tmp_path / f"{ASSIGNMENTS[0]}.ipynb"
    nbformat.write(notebook, path)
    completed = check(path)
    assert completed.returncode == 1, completed.stdout
    grade_id = answer.metadata["nbgrader"]["grade_id"]
    assert f"ERROR in your answer cell {grade_id}:" in completed.stdout, completed.stdout
    assert "SyntaxError" in completed.stdout


def test_hints_are_wrapped_whole():
    """Hints are wrapped at word boundaries, never cut at a '. ' inside them ('0 .. n', 'e.g. exp')."""
    hint = ("AssertionError: the mask is aligned top-left: query i sees keys 0 .. len_k - len_q + i; "
            "an overflow (e.g. `exp` of a large number) gives NaN.")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = report("nb.ipynb", CheckReport([TestOutcome("test_mask", 2, False, hint)]))
    assert status == 1
    text = " ".join(printed.getvalue().split())
    assert "keys 0 .. len_k - len_q + i" in text and "(e.g. `exp` of a large number)" in text, text
