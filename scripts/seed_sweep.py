"""Execute chapters with several seeds and print a table of their glued results.

    .venv/bin/python scripts/seed_sweep.py [--seeds 0 1 2 3 4] [CHAPTER_FILTER ...]

Each run executes the chapter in a fresh kernel with ``SEED`` set and its timing cells left out, so
every hidden guard checks its claim for that seed (a failing guard is reported as FAILED with its
message). The table, one row per glued value and one column per seed, is printed as Markdown and
written to ``_build/seed_sweep.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from chapter_runner import CHAPTERS, glued_values, run_chapter  # noqa: E402

from autograder.feedback import _ANSI  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("filters", nargs="*", help="run only chapters whose name contains one of these")
    args = parser.parse_args()
    chapters = [c for c in CHAPTERS if not args.filters or any(f in c for f in args.filters)]
    report: dict[str, dict[str, dict[str, str]]] = {}
    for chapter in chapters:
        report[chapter] = {}
        for seed in args.seeds:
            start = time.monotonic()
            try:
                values = glued_values(run_chapter(chapter, seed=seed))
                values["guards"] = "pass"
            except CellExecutionError as error:
                message = _ANSI.sub("", str(error)).strip().splitlines()[-1]
                values = {"guards": "FAILED: " + message[:200]}
            values["seconds"] = f"{time.monotonic() - start:.1f}"
            report[chapter][str(seed)] = values
            print(f"{chapter} seed {seed}: {values['guards']} ({values['seconds']} s)", file=sys.stderr)
        keys = list(dict.fromkeys(k for v in report[chapter].values() for k in v))
        print(f"\n### {chapter}\n")
        print("| value | " + " | ".join(f"seed {s}" for s in args.seeds) + " |")
        print("|---|" + "---|" * len(args.seeds))
        for key in keys:
            cells = [report[chapter][str(s)].get(key, "") for s in args.seeds]
            print(f"| {key} | " + " | ".join(cells) + " |")
    (ROOT / "_build").mkdir(exist_ok=True)
    (ROOT / "_build" / "seed_sweep.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
