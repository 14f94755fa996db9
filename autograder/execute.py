"""nbgrader's Execute preprocessor, hardened for untrusted notebooks.

Adds to ``nbgrader.preprocessors.Execute``:

* the guard cells of :mod:`autograder.guard` (snapshot after the setup cells, restore before each
  test cell); they are executed, then removed, and a test cell whose restore failed scores zero;
* a cap on the output one cell may produce while it runs (nbgrader's ``LimitOutput`` only trims
  afterwards, by which time an endless ``print`` loop may have used gigabytes).
"""

from __future__ import annotations

from typing import Any

from nbformat import NotebookNode
from nbformat.v4 import new_code_cell, new_output
from nbgrader.preprocessors import Execute
from nbgrader.utils import is_grade, is_locked, is_solution
from traitlets import Integer

from autograder.guard import Guard

GUARD_TAG = Guard.MARKER
TAMPERED = (
    "The grader's integrity check could not run before this test cell "
    "(the answer cells deleted or broke it), so this test scores 0."
)


def _is_test(cell: NotebookNode) -> bool:
    return cell.cell_type == "code" and is_grade(cell) and not is_solution(cell)


def _is_setup(cell: NotebookNode) -> bool:
    return cell.cell_type == "code" and is_locked(cell) and not is_grade(cell) and not is_solution(cell)


class GuardedExecute(Execute):
    """Execute a student's notebook with guard cells and a cap on output size."""

    max_output_bytes = Integer(
        2_000_000, help="Bytes of output kept per cell while it runs; the rest is dropped."
    ).tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: Any, *args: Any, **kwargs: Any):
        guard = Guard()
        cells = nb.cells
        last_setup = max((i for i, c in enumerate(cells) if _is_setup(c) and not any(
            is_solution(d) or _is_test(d) for d in cells[:i])), default=-1)
        guarded: list[NotebookNode] = []
        if last_setup < 0:
            guarded.append(self._guard_cell(guard.snapshot_source()))
        for index, cell in enumerate(cells):
            if _is_test(cell):
                guarded.append(self._guard_cell(guard.restore_source()))
            guarded.append(cell)
            if index == last_setup:
                guarded.append(self._guard_cell(guard.snapshot_source()))
        nb.cells = guarded
        self._output_bytes: dict[int, int] = {}
        try:
            nb, resources = super().preprocess(nb, resources, *args, **kwargs)
        finally:
            nb.cells = self._without_guard_cells(nb.cells)
        return nb, resources

    @staticmethod
    def _guard_cell(source: str) -> NotebookNode:
        cell = new_code_cell(source)
        cell.metadata["tags"] = [GUARD_TAG]
        return cell

    @staticmethod
    def _without_guard_cells(cells: list[NotebookNode]) -> list[NotebookNode]:
        kept: list[NotebookNode] = []
        tampered = False
        for cell in cells:
            if GUARD_TAG in cell.metadata.get("tags", []):
                tampered = any(o.get("output_type") == "error" for o in cell.get("outputs", []))
                continue
            if tampered and _is_test(cell):
                cell.outputs.append(new_output("error", ename="IntegrityError", evalue=TAMPERED,
                                               traceback=[f"IntegrityError: {TAMPERED}"]))
            tampered = False
            kept.append(cell)
        return kept

    def output(self, outs: list, msg: dict, display_id: str | None, cell_index: int):
        """Keep a cell's output until it reaches ``max_output_bytes``, then drop the rest."""
        size = len(str(msg.get("content", "")))
        used = self._output_bytes.get(cell_index, 0)
        self._output_bytes[cell_index] = used + size
        if used + size <= self.max_output_bytes:
            return super().output(outs, msg, display_id, cell_index)
        if used <= self.max_output_bytes:
            outs.append(new_output("stream", name="stdout",
                                   text="\n[output truncated by the grader: too much output]\n"))
        return None
