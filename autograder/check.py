"""Student self-check: run a notebook top to bottom in a fresh kernel and report its visible tests.

Unlike ``nbgrader validate`` (which exits 0 even when tests fail), the verdict is in the exit status:
0 only when every test cell passes. JupyterLab's Validate button shows this same report
(``autograder/lab.py``).
"""

from __future__ import annotations

import sys
import tempfile
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbgrader.utils import compute_checksum
from traitlets.config import Config

from autograder.feedback import _ANSI
from autograder.settings import Limits


@dataclass
class TestOutcome:
    """One test cell's outcome."""

    __test__ = False  # not a pytest test class

    grade_id: str
    points: float
    passed: bool
    message: str
    edited: bool = False
    """The student changed this locked test cell: grading restores the original."""


@dataclass
class CheckReport:
    """What running a notebook found: each test cell's outcome, and answer cells that raised."""

    tests: list[TestOutcome] = field(default_factory=list)
    broken_answers: list[tuple[str, str]] = field(default_factory=list)
    """(grade_id, error) of answer cells that raised something other than NotImplementedError."""


def _test_cells(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in notebook.cells if c.cell_type == "code"
            and c.metadata.get("nbgrader", {}).get("grade") and not c.metadata["nbgrader"].get("solution")]


def _answer_cells(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in notebook.cells
            if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")]


def _answer_error(cell: nbformat.NotebookNode) -> str | None:
    """The error an answer cell raised while it ran (a SyntaxError, a NameError, ...), if any."""
    for output in cell.get("outputs", []):
        if output.output_type == "error" and output.ename != "NotImplementedError":
            return _ANSI.sub("", f"{output.ename}: {output.evalue}").strip()
    return None


def _message(cell: nbformat.NotebookNode) -> str | None:
    """The failure message of an executed test cell, or None if it passed."""
    for output in cell.get("outputs", []):
        if output.output_type == "error":
            if output.ename == "NotImplementedError":
                return "not answered yet: a function it tests still raises NotImplementedError"
            text = _ANSI.sub("", f"{output.ename}: {output.evalue}").strip().rstrip(":")
            return text or output.ename
    return None


def _edited(cell: nbformat.NotebookNode) -> bool:
    meta = cell.metadata.get("nbgrader", {})
    return bool(meta.get("locked") and meta.get("checksum") and compute_checksum(cell) != meta["checksum"])


def run_checks(path: Path, limits: Limits = Limits()) -> CheckReport:
    """Execute the notebook at ``path`` (not modified on disk) and report its test cells' outcomes."""
    notebook = nbformat.read(path, as_version=4)
    edited = {id(cell) for cell in _test_cells(notebook) if _edited(cell)}
    # The kernel talks to us over Unix sockets in a private folder (ZeroMQ's ipc transport): over
    # TCP, ipykernel warns that the traffic is not encrypted.
    with tempfile.TemporaryDirectory(prefix="course-check-") as sockets:
        config = Config()
        config.KernelManager.transport = "ipc"
        config.KernelManager.ip = str(Path(sockets) / "kernel")
        client = NotebookClient(notebook, config=config, timeout=limits.cell_timeout, allow_errors=True,
                                kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
        try:
            client.execute()
        except (CellTimeoutError, DeadKernelError) as error:
            print(f"The notebook stopped early: {str(error).splitlines()[0]}", file=sys.stderr)
    result = CheckReport()
    for cell in _test_cells(notebook):
        meta = cell.metadata["nbgrader"]
        ran = cell.get("execution_count") is not None
        message = _message(cell) if ran else "did not run (the notebook stopped before this cell)"
        result.tests.append(TestOutcome(meta.get("grade_id", "?"), float(meta.get("points", 0)),
                                        message is None, message or "", edited=id(cell) in edited))
    for cell in _answer_cells(notebook):
        error = _answer_error(cell)
        if error:
            result.broken_answers.append((cell.metadata["nbgrader"].get("grade_id", "?"), error))
    return result


def _wrapped(text: str) -> str:
    """A message as indented lines of at most 100 characters (words are never split)."""
    return textwrap.fill(" ".join(text.split()), width=100, initial_indent=" " * 8,
                         subsequent_indent=" " * 8, break_long_words=False, break_on_hyphens=False)


def report(path: Path, checked: CheckReport) -> int:
    """Print a student-friendly report; return the exit status (0 only if all tests pass)."""
    print(f"Checking {path}")
    outcomes = checked.tests
    if not outcomes:
        print("  This notebook has no test cells.")
        return 1
    for grade_id, error in checked.broken_answers:
        print(f"  ERROR in your answer cell {grade_id}:")
        print(_wrapped(f"{error}. Until it runs, the tests that use what it defines fail too (often with "
                       "NameError: name ... is not defined)."))
    width = max(len(o.grade_id) for o in outcomes)
    for outcome in outcomes:
        mark = "PASS" if outcome.passed else "FAIL"
        print(f"  {mark}  {outcome.grade_id:<{width}}  ({outcome.points:g} points)")
        if not outcome.passed:
            print(_wrapped(outcome.message))
        if outcome.edited:
            print(_wrapped("This test cell was edited: grading runs the original, so edits here do not "
                           "count."))
    passed = sum(o.passed for o in outcomes)
    failed = [o for o in outcomes if not o.passed and not o.message.startswith("not answered yet")]
    if len(failed) > 1:
        print("A test can also fail because it uses a function from an earlier task that is not right yet: "
              "fix the earliest failing task first. When your work is graded, each task is checked with "
              "correct versions of the earlier tasks' functions, so a mistake costs only its own points.")
    print(f"{passed} of {len(outcomes)} visible test cells pass. Hidden tests, run when your work is "
          "graded, check more cases.")
    return 0 if passed == len(outcomes) else 1
