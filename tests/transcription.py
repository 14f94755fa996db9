"""What a student who copies a chapter would submit: the book's code pasted into every answer cell.

The transcription test (``tests/test_transcription.py``) grades such submissions to check that an
exercise asks for more than the book prints.
"""

from __future__ import annotations

import ast
import copy
import textwrap
from pathlib import Path

import jupytext
import nbformat
from conftest import nbgrader_meta, release_notebook
from IPython.core.inputtransformer2 import TransformerManager

BOOK = Path(__file__).resolve().parent.parent / "book"
CHAPTERS = sorted(p.stem for p in BOOK.glob("ch[0-9][0-9]_*.md"))

_COPIED = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def chapters_up_to(assignment_id: str) -> list[str]:
    """The chapters a student has read by exercise ``exNN_...``: chapters 1 to NN."""
    number = int(assignment_id[2:4])
    return [chapter for chapter in CHAPTERS if int(chapter[2:4]) <= number]


def _is_constant(node: ast.stmt) -> bool:
    """``NAME = ...`` (or annotated) where every name assigned is UPPER_CASE."""
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, ast.AnnAssign) and node.value is not None:
        targets = [node.target]
    else:
        return False
    return all(isinstance(t, ast.Name) and t.id.isupper() for t in targets)


def _guarded(statement: str) -> str:
    """``statement`` so that its failure does not stop the rest of the copy (as a student would fix a
    line that needs a variable the copy left out)."""
    return "try:\n" + textwrap.indent(statement, "    ") + "\nexcept Exception:\n    pass"


def chapter_copy(chapter: str) -> str:
    """The top-level imports, constants, functions and classes of every code cell of a chapter, each
    guarded so that one that fails (a constant computed from a variable not copied) skips itself only."""
    notebook = jupytext.read(BOOK / f"{chapter}.md")
    transform = TransformerManager().transform_cell
    pieces: list[str] = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(transform(cell.source))
        except SyntaxError:
            continue
        pieces += [_guarded(ast.unparse(node)) for node in tree.body
                   if isinstance(node, _COPIED) or _is_constant(node)]
    return "\n\n".join(pieces)


def copied_submission(assignment_id: str, chapter: str) -> nbformat.NotebookNode:
    """The release notebook with ``chapter``'s code appended to the template of every answer cell."""
    code = chapter_copy(chapter)
    notebook = copy.deepcopy(release_notebook(assignment_id))
    for cell in notebook.cells:
        if cell.cell_type == "code" and nbgrader_meta(cell).get("solution"):
            cell.source = f"{cell.source}\n\n# Copied from book/{chapter}.md\n{code}\n"
    return notebook
