"""Command line of the course's tools: ``python -m autograder {check,release,grade,export,student-edition}``.

In the student edition only ``check`` exists: the instructor's tools are not shipped there.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from autograder.settings import Limits

# The student edition ships this package without the instructor's modules.
INSTRUCTOR_TOOLS = (Path(__file__).parent / "grade.py").is_file()


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _add_instructor_commands(commands) -> None:
    release = commands.add_parser("release", help="regenerate exercises/ from solutions/ (nbgrader)")
    release.add_argument("assignments", nargs="*", help="assignment ids (default: all)")

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
    grade.add_argument("--roster", type=Path, metavar="CSV",
                       help="class list (nbgrader's student CSV, column 'id'): a row for every student on it")
    grade.add_argument("--due", action="append", metavar="ID=TIME",
                       help="due date of an assignment, with its time zone, e.g. "
                            "'ex01_attention_basics=2026-03-01 17:00 Europe/Berlin': later submissions "
                            "(nbgrader's timestamp.txt) are flagged 'late' (repeatable)")

    export = commands.add_parser("export", help="grades.csv in the layout Canvas or Moodle imports")
    export.add_argument("grades", type=Path, help="grades.csv written by `grade`")
    export.add_argument("--lms", choices=["canvas", "moodle"], required=True)
    export.add_argument("--out", type=Path, required=True, help="CSV file to write")
    export.add_argument("--roster", type=Path, metavar="CSV", help="who the students are in the LMS")
    export.add_argument("--assignment", action="append", dest="assignments", metavar="ID",
                        help="export only this assignment (repeatable; default: all in grades.csv)")
    export.add_argument("--title", action="append", metavar="ID=TITLE",
                        help="column title for an assignment, e.g. 'ex01_attention_basics=Exercise 1 (4711)' "
                             "(Canvas matches 'Title (assignment id)') (repeatable)")
    export.add_argument("--percent", action="store_true", help="scores in percent of each maximum")

    edition = commands.add_parser("student-edition",
                                  help="write what students get: no solutions, no hidden tests")
    edition.add_argument("out", type=Path, help="folder to write (new, or an earlier edition)")
    edition.add_argument("--exchange-root",
                         help="nbgrader exchange of the class (default: settings.EXCHANGE_ROOT)")
    edition.add_argument("--course-id", help="nbgrader course id (default: settings.COURSE_ID)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="run a notebook in a fresh kernel and report its tests")
    check.add_argument("notebook", type=Path)
    check.add_argument("--cell-timeout", type=_positive, default=Limits.cell_timeout)
    if INSTRUCTOR_TOOLS:
        _add_instructor_commands(commands)
    return parser


def _release(args) -> int:
    from autograder.release import release

    for folder in release(args.assignments):
        print(f"released {folder}")
    return 0


def _check(args) -> int:
    from autograder.check import report, run_checks

    if not args.notebook.is_file():
        print(f"error: no notebook at {args.notebook}", file=sys.stderr)
        return 2
    notebook = args.notebook.resolve()
    return report(args.notebook, run_checks(notebook, Limits(cell_timeout=args.cell_timeout)))


def _grade(args) -> int:
    from autograder.grade import grade_all
    from autograder.lateness import parse_due_dates
    from autograder.roster import Roster

    try:
        roster = Roster.read(args.roster) if args.roster else None
        due = parse_due_dates(args.due)
    except ValueError as error:  # RosterError, or a due date without a time zone
        return _error(error)
    limits = Limits(cell_timeout=args.cell_timeout, wall_seconds=args.wall_limit,
                    memory_mb=args.memory_mb, output_lines=args.output_lines)
    grade_all(args.submissions, args.out, args.assignments, args.workers, limits, roster=roster, due=due,
              scheduler=args.scheduler)
    return 0


def _export(args) -> int:
    from autograder.export import export, parse_titles
    from autograder.roster import Roster

    try:
        roster = Roster.read(args.roster) if args.roster else None
        table = export(args.grades, args.lms, args.out, roster, args.assignments, parse_titles(args.title),
                       args.percent)
    except ValueError as error:  # RosterError, ExportError
        return _error(error)
    for note in table.notes:
        print(f"note: {note}")
    print(f"wrote {args.out}: {len(table.rows) - (args.lms == 'canvas')} student row(s), "
          f"{len(table.header) - 5} assignment column(s) for {args.lms}")
    return 0


def _student_edition(args) -> int:
    from autograder import settings
    from autograder.student_edition import EditionError, build

    try:
        files = build(args.out, exchange_root=args.exchange_root or settings.EXCHANGE_ROOT,
                      course_id=args.course_id or settings.COURSE_ID)
    except EditionError as error:
        return _error(error)
    print(f"wrote the student edition to {args.out} ({len(files)} files)")
    return 0


def _error(error: Exception) -> int:
    print(f"error: {error}", file=sys.stderr)
    return 2


COMMANDS = {"check": _check, "release": _release, "grade": _grade, "export": _export,
            "student-edition": _student_edition}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
