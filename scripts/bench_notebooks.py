"""Time every chapter and every solution notebook, executed from scratch in a fresh kernel.

    .venv/bin/python scripts/bench_notebooks.py [NAME_FILTER]

Budgets (issues): chapter 1, 3, 4 under 60 s, chapter 2 under 90 s; solution notebooks under 30 s.
Prints a table and writes it to ``_build/bench_notebooks.json``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
BUDGETS = {"ch02_rnn_attention": 90.0}


def execute(path: Path) -> float:
    """Seconds to execute the notebook at ``path`` (chapter .md or .ipynb) top to bottom."""
    notebook = jupytext.read(path) if path.suffix == ".md" else nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.monotonic()
    client.execute()
    return time.monotonic() - start


def main() -> None:
    name_filter = sys.argv[1] if len(sys.argv) > 1 else ""
    rows = []
    targets = sorted((ROOT / "book").glob("ch*.md")) + sorted((ROOT / "solutions").glob("*/*.ipynb"))
    for path in targets:
        if name_filter not in path.stem:
            continue
        budget = BUDGETS.get(path.stem, 60.0 if path.suffix == ".md" else 30.0)
        seconds = execute(path)
        rows.append({"notebook": str(path.relative_to(ROOT)), "seconds": round(seconds, 1), "budget": budget})
        print(f"{rows[-1]['notebook']:<60} {seconds:6.1f} s  (budget {budget:g} s)", flush=True)
    (ROOT / "_build").mkdir(exist_ok=True)
    (ROOT / "_build" / "bench_notebooks.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
