"""Feedback that never reveals hidden tests.

nbgrader's default feedback shows the hidden tests' source and tracebacks that quote it (nbgrader
issues #917 and #1363). ``ClearHiddenTests`` removes the source; :class:`RedactHiddenTestErrors`,
which must run before it, rewrites every test cell's error output to a short message: the hint (the
exception's message) stays, the traceback with its source excerpts goes, and a failure inside the
hidden region is labelled as such without a line number.
"""

from __future__ import annotations

import re
from typing import Any

from nbformat import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor
from nbgrader.utils import is_grade, is_solution
from traitlets import Unicode

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_CELL_LINE = re.compile(r"(?:Cell In\s*\[\d*\]|<ipython-input-[^>]*>),\s*line (\d+)")


def hidden_lines(source: str, begin: str, end: str) -> set[int]:
    """1-based line numbers covered by the hidden-tests regions of ``source`` (a cell may have several:
    a hidden prologue that binds reference helpers, then the hidden tests after the visible ones)."""
    hidden: set[int] = set()
    inside = False
    for number, line in enumerate(source.splitlines(), 1):
        if begin in line:
            inside = True
        if inside:
            hidden.add(number)
        if inside and end in line:
            inside = False
    return hidden


def failing_line(traceback: list[str]) -> int | None:
    """The line of the test cell where the error surfaced (the outermost cell frame)."""
    for entry in traceback:
        match = _CELL_LINE.search(_ANSI.sub("", entry))
        if match:
            return int(match.group(1))
    return None


class RedactHiddenTestErrors(NbGraderPreprocessor):
    """Replace test cells' tracebacks with a message that quotes no test code."""

    begin_test_delimeter = Unicode("BEGIN HIDDEN TESTS").tag(config=True)
    end_test_delimeter = Unicode("END HIDDEN TESTS").tag(config=True)

    def preprocess_cell(self, cell: NotebookNode, resources: Any, index: int):
        if cell.cell_type != "code" or not is_grade(cell) or is_solution(cell):
            return cell, resources
        hidden = hidden_lines(cell.source, self.begin_test_delimeter, self.end_test_delimeter)
        for output in cell.get("outputs", []):
            if output.output_type != "error":
                continue
            line = failing_line(output.get("traceback", []))
            message = f"{output.ename}: {_ANSI.sub('', str(output.evalue))}".rstrip(": ")
            if hidden and (line is None or line in hidden):
                text = f"A hidden test failed. {message}"
                output.ename, output.evalue = "HiddenTestFailure", message
            else:
                where = f" (line {line} of this cell)" if line else ""
                text = f"A visible test failed{where}. {message}"
            output.traceback = [text]
        return cell, resources
