"""Benchmark the grading tool: seconds per normal submission, worker scaling, cost of a runaway.

    .venv/bin/python scripts/bench_grading.py [--copies 8] [--assignment ex01_attention_basics]

Grades ``--copies`` perfect submissions with 1 worker and with 2, then one endless submission with a
short wall limit, and prints the figures (also written to ``_build/bench_grading.json``).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from conftest import nbgrader_meta, solved_release  # noqa: E402

from autograder.grade import grade_all  # noqa: E402
from autograder.settings import Limits  # noqa: E402


def make_submissions(folder: Path, assignment_id: str, notebook, copies: int) -> Path:
    for index in range(copies):
        target = folder / f"student{index:03d}" / assignment_id
        target.mkdir(parents=True)
        nbformat.write(notebook, target / f"{assignment_id}.ipynb")
    return folder


def timed_grade(submissions: Path, out: Path, workers: int, limits: Limits) -> tuple[float, list]:
    """Seconds from the first submission started to the last one graded (set-up excluded)."""
    stamps: dict[str, float] = {}

    def progress(message: str) -> None:
        if message.startswith("grading "):
            stamps["start"] = time.monotonic()
        elif message.startswith("["):
            stamps["end"] = time.monotonic()

    results = grade_all(submissions, out, workers=workers, limits=limits, progress=progress)
    return stamps["end"] - stamps["start"], results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--assignment", default="ex01_attention_basics")
    args = parser.parse_args()
    solved = solved_release(args.assignment)
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        submissions = make_submissions(tmp_path / "subs", args.assignment, solved, args.copies)
        for workers in (1, 2):
            seconds, results = timed_grade(submissions, tmp_path / f"out{workers}", workers, Limits())
            assert all(r.score == r.max_score for r in results), "a perfect submission lost points"
            figures[f"grading_s_{workers}_workers"] = round(seconds, 2)
            figures[f"per_submission_wall_s_{workers}_workers"] = round(
                sum(r.seconds for r in results) / len(results), 2)
            figures[f"throughput_per_min_{workers}_workers"] = round(60 * len(results) / seconds, 1)
        figures["speedup_2_vs_1"] = round(figures["grading_s_1_workers"] / figures["grading_s_2_workers"], 2)

        runaway = copy.deepcopy(solved)
        answer = next(c for c in runaway.cells if nbgrader_meta(c).get("solution"))
        answer.source = "import time\nwhile True:\n    try:\n        time.sleep(0.1)\n" \
                        "    except KeyboardInterrupt:\n        pass\n" + answer.source
        runaway_dir = make_submissions(tmp_path / "runaway", args.assignment, runaway, 1)
        limits = Limits(cell_timeout=5, wall_seconds=20)
        seconds, results = timed_grade(runaway_dir, tmp_path / "out_runaway", 1, limits)
        figures["runaway_wall_limit_s"] = limits.wall_seconds
        figures["runaway_submission_s"] = results[0].seconds
        figures["runaway_status"] = results[0].status
    print(json.dumps(figures, indent=2))
    (ROOT / "_build").mkdir(exist_ok=True)
    (ROOT / "_build" / "bench_grading.json").write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
