"""Command line of the course's grading tools: ``python -m autograder {release,check,grade}``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from autograder.settings import Limits


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    release = commands.add_parser("release", help="regenerate exercises/ from solutions/ (nbgrader)")
    release.add_argument("assignments", nargs="*", help="assignment ids (default: all)")

    check = commands.add_parser("check", help="run a notebook in a fresh kernel and report its tests")
    check.add_argument("notebook", type=Path)
    check.add_argument("--cell-timeout", type=_positive, default=Limits.cell_timeout)

    grade = commands.add_parser("grade", help="grade a folder of submissions")
    grade.add_argument("submissions", type=Path, help="SUBMISSIONS/<student>/<assignment>/<assignment>.ipynb")
    grade.add_argument("--out", type=Path, required=True, help="folder for grades.csv, feedback, summary")
    grade.add_argument("--assignment", action="append", dest="assignments", metavar="ID",
                       help="grade only this assignment (repeatable; default: all)")
    grade.add_argument("--workers", type=_positive, default=2,
                       help="local worker processes, each grading one submission at a time (default 2)")
    grade.add_argument("--scheduler", metavar="ADDRESS",
                       help="grade on the workers of the Dask cluster whose scheduler is at ADDRESS "
                            "(tcp://HOST:PORT) instead of on local workers")
    grade.add_argument("--cell-timeout", type=_positive, default=Limits.cell_timeout,
                       help=f"seconds per cell (default {Limits.cell_timeout})")
    grade.add_argument("--wall-limit", type=_positive, default=Limits.wall_seconds,
                       help=f"seconds per submission (default {Limits.wall_seconds})")
    grade.add_argument("--memory-mb", type=_positive, default=Limits.memory_mb,
                       help=f"memory per student kernel in MiB (default {Limits.memory_mb})")
    grade.add_argument("--output-lines", type=_positive, default=Limits.output_lines,
                       help=f"output lines kept per cell (default {Limits.output_lines})")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "release":
        from autograder.release import release

        for folder in release(args.assignments):
            print(f"released {folder}")
        return 0
    if args.command == "check":
        from autograder.check import report, run_checks

        if not args.notebook.is_file():
            print(f"error: no notebook at {args.notebook}", file=sys.stderr)
            return 2
        notebook = args.notebook.resolve()
        return report(args.notebook, run_checks(notebook, Limits(cell_timeout=args.cell_timeout)))
    from autograder.grade import grade_all

    limits = Limits(cell_timeout=args.cell_timeout, wall_seconds=args.wall_limit,
                    memory_mb=args.memory_mb, output_lines=args.output_lines)
    grade_all(args.submissions, args.out, args.assignments, args.workers, limits, scheduler=args.scheduler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
