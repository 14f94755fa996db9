"""Execute a chapter of the book outside the book build: with another seed, without its timings.

Every chapter declares its seed in one code cell tagged ``parameters`` (``SEED = 0``); everything
random in the chapter derives from it. Its claims are guarded by hidden cells (tag ``remove-cell``)
that assert them, so executing the chapter with another seed re-checks every claim. Cells tagged
``benchmark`` (timings, which depend on the machine and not on the seed) can be left out.
"""

from __future__ import annotations

from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

BOOK = Path(__file__).resolve().parent.parent / "book"
CHAPTERS = sorted(p.stem for p in BOOK.glob("ch[0-9][0-9]_*.md"))
PARAMETERS_TAG = "parameters"
BENCHMARK_TAG = "benchmark"


def tags(cell: nbformat.NotebookNode) -> list[str]:
    return list(cell.metadata.get("tags", []))


def parameters_cell(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The one code cell tagged ``parameters``; LookupError if there is none or several."""
    cells = [c for c in notebook.cells if c.cell_type == "code" and PARAMETERS_TAG in tags(c)]
    if len(cells) != 1:
        raise LookupError(f"expected one code cell tagged {PARAMETERS_TAG!r}, found {len(cells)}")
    return cells[0]


def chapter_notebook(chapter: str, seed: int | None = None, skip_benchmarks: bool = True):
    """The chapter as a notebook, with ``SEED = seed`` and without its benchmark cells."""
    notebook = jupytext.read(BOOK / f"{chapter}.md")
    if seed is not None:
        cell = parameters_cell(notebook)
        assert "SEED" in cell.source, f"{chapter}: the parameters cell does not set SEED"
        cell.source = f"{cell.source}\nSEED = {seed}  # set by tests/chapter_runner.py"
    if skip_benchmarks:
        notebook.cells = [c for c in notebook.cells if BENCHMARK_TAG not in tags(c)]
    return notebook


def run_chapter(chapter: str, seed: int | None = None, skip_benchmarks: bool = True,
                timeout: int = 900) -> nbformat.NotebookNode:
    """Execute the chapter top to bottom in a fresh kernel (working directory ``book/``, as in the
    build); a failing cell, a failing guard among them, raises ``nbclient``'s CellExecutionError."""
    notebook = chapter_notebook(chapter, seed, skip_benchmarks)
    NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(BOOK)}}).execute()
    return notebook


def glued_values(notebook: nbformat.NotebookNode) -> dict[str, str]:
    """Every value glued with ``myst_nb.glue`` in an executed notebook, as its plain-text form."""
    values: dict[str, str] = {}
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            name = output.get("metadata", {}).get("scrapbook", {}).get("name")
            if name is None:
                continue
            data = output.get("data", {})
            text = next((v for k, v in data.items() if k.endswith("text/plain")), "")
            values[name] = text.strip("'\"")
    return values
