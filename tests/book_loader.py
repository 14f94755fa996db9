"""Load the from-scratch implementations that a chapter defines, so tests can check them.

Chapter cells tagged ``implementation`` hold the chapter's own code (functions and modules, no
training). They are executed in order, in a fresh module namespace, exactly as written in the book.
"""

from __future__ import annotations

import types
from pathlib import Path

import jupytext

BOOK = Path(__file__).resolve().parent.parent / "book"
TAG = "implementation"


def implementation_cells(chapter: str) -> list[str]:
    """Return the source of the code cells tagged ``implementation`` in ``book/<chapter>.md``."""
    notebook = jupytext.read(BOOK / f"{chapter}.md")
    return [
        cell.source
        for cell in notebook.cells
        if cell.cell_type == "code" and TAG in cell.metadata.get("tags", [])
    ]


def load_chapter(chapter: str) -> types.ModuleType:
    """Execute a chapter's ``implementation`` cells and return them as a module."""
    cells = implementation_cells(chapter)
    if not cells:
        raise LookupError(f"book/{chapter}.md has no code cell tagged {TAG!r}")
    module = types.ModuleType(f"book_{chapter}")
    for index, source in enumerate(cells):
        code = compile(source, f"book/{chapter}.md[implementation cell {index}]", "exec")
        exec(code, module.__dict__)  # noqa: S102 - the book's own code, by design
    return module
