"""Grade one submission in a process of its own (started by :mod:`autograder.grade`).

Writes the :class:`~autograder.engine.Result` as JSON to ``--result``. Whatever goes wrong inside
nbgrader becomes a status in that result; only a kill from outside leaves no result file.
"""

from __future__ import annotations

import argparse
import logging
import warnings
from pathlib import Path

from autograder.engine import GradingError, Result, grade
from autograder.settings import Limits


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("template", "workspace", "notebook", "feedback", "result"):
        parser.add_argument(f"--{name}", type=Path, required=True)
    parser.add_argument("--assignment", required=True)
    parser.add_argument("--student", required=True)
    parser.add_argument("--cell-timeout", type=int, default=Limits.cell_timeout)
    parser.add_argument("--memory-mb", type=int, default=Limits.memory_mb)
    parser.add_argument("--output-lines", type=int, default=Limits.output_lines)
    parser.add_argument("--no-bwrap", action="store_true")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")  # SQLAlchemy and jupyter_client warnings are noise here
    logging.disable(logging.WARNING)
    limits = Limits(cell_timeout=args.cell_timeout, memory_mb=args.memory_mb, output_lines=args.output_lines)
    try:
        result = grade(args.template, args.workspace, args.assignment, args.student, args.notebook,
                       limits=limits, use_bwrap=not args.no_bwrap, feedback_to=args.feedback)
    except GradingError as error:
        result = Result(args.student, args.assignment, status="grader error", detail=str(error)[:300])
    args.result.write_text(result.to_json())


if __name__ == "__main__":
    main()
