"""Grades in the layouts that learning-management systems import: one row per student, one column per
assignment, from the grading tool's ``grades.csv``.

Canvas (Grades > Import): the header ``Student, ID, SIS User ID, SIS Login ID, Section`` then one column
per assignment, and a second row ``Points Possible`` (Canvas gives a new assignment those points).
Canvas finds a student by ``ID`` (its own user id), else ``SIS User ID``, else ``SIS Login ID``, else by
name; an assignment column titled ``Title (1234)`` updates Canvas assignment 1234, one titled like an
existing assignment updates it, any other creates a new assignment. An empty cell changes nothing.

Moodle (Grades > Import > CSV file): one column identifies the user; on import you map it ("Map from"
``Username``, ``Email address`` or ``ID number``, "Map to" the same field) and map each assignment column
to a grade item, or to a new one. ``-`` means "no grade". Moodle stops the whole import at the first
row whose user it cannot find, so with a roster only roster students are written.

Identities come from the roster (:mod:`autograder.roster`); without one, the course's student id is
used as Canvas's ``SIS Login ID`` and as Moodle's ``Username``.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from autograder.roster import Roster, Student, student_key

LMS_NAMES = ("canvas", "moodle")
CANVAS_IDENTITY = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
MOODLE_IDENTITY = ["First name", "Last name", "Username", "ID number", "Email address"]
REQUIRED_COLUMNS = {"student_id", "assignment_id", "score", "max_score", "status"}


class ExportError(ValueError):
    """The grades cannot be exported as asked; the message says why."""


@dataclass(frozen=True)
class Grade:
    """One row of grades.csv, as the export needs it."""

    student_id: str
    assignment_id: str
    score: float
    max_score: float
    status: str


@dataclass
class Table:
    """An export: the header, the rows, and notes for the instructor (who was left out, and why)."""

    header: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)


def read_grades(path: Path) -> list[Grade]:
    """Read grades.csv; refuse a file with two rows for one student and assignment."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = REQUIRED_COLUMNS - set(reader.fieldnames or [])
            if missing:
                raise ExportError(f"{path} is not a grades.csv of the grading tool: no column(s) "
                                  f"{', '.join(sorted(missing))}")
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ExportError(f"cannot read {path}: {error}") from error
    grades: list[Grade] = []
    seen: dict[tuple[str, str], int] = {}
    for line, row in enumerate(rows, start=2):
        key = (student_key(row["student_id"]), row["assignment_id"])
        if key in seen:
            raise ExportError(f"{path}, line {line}: a second row for {row['student_id']!r} / "
                              f"{row['assignment_id']} (the first is on line {seen[key]}); keep one")
        seen[key] = line
        try:
            score, max_score = float(row["score"]), float(row["max_score"])
        except ValueError as error:
            raise ExportError(f"{path}, line {line}: score or max_score is not a number") from error
        grades.append(Grade(row["student_id"], row["assignment_id"], score, max_score, row["status"]))
    return grades


def number(value: float) -> str:
    """A score as LMSs read it: a decimal point, no exponent, at most 4 decimals, no trailing zeros."""
    if not math.isfinite(value):
        raise ExportError(f"a score is not a finite number: {value}")
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _columns(grades: list[Grade], assignments: list[str] | None) -> tuple[list[str], dict[str, float]]:
    """The assignments to export (those of the course found in grades.csv) and their maximum points."""
    maxima: dict[str, float] = {}
    for grade in grades:
        if grade.max_score > 0:
            maxima[grade.assignment_id] = max(maxima.get(grade.assignment_id, 0.0), grade.max_score)
    chosen = assignments or sorted(maxima)
    absent = [a for a in chosen if a not in maxima]
    if absent:
        raise ExportError(f"no graded rows for {', '.join(absent)} in grades.csv "
                          f"(it has: {', '.join(sorted(maxima)) or 'none'})")
    return chosen, maxima


def _students(grades: list[Grade], roster: Roster | None, notes: list[str]) -> list[Student]:
    """Whom to write, in order: the roster's students, or every student of grades.csv (sorted)."""
    ids = list(dict.fromkeys(g.student_id for g in grades))
    if roster is None:
        return [Student(id=i) for i in sorted(ids)]
    unlisted = [i for i in ids if i not in roster]
    if unlisted:
        notes.append(f"{len(unlisted)} student id(s) in grades.csv are not on the roster and were left out "
                     f"(an LMS cannot place them): {', '.join(unlisted)}")
    return list(roster)


def _scores(grades: list[Grade], columns: list[str], maxima: dict[str, float], percent: bool,
            notes: list[str]) -> dict[str, dict[str, str]]:
    """{student key: {assignment: cell text}} for the chosen assignments."""
    cells: dict[str, dict[str, str]] = defaultdict(dict)
    odd = sorted({g.status for g in grades if g.assignment_id in columns
                  and g.status not in ("graded", "no submission")})
    if odd:
        notes.append(f"some rows were not graded normally ({', '.join(odd)}): their scores are exported as "
                     "computed; review them in grades.csv first")
    for grade in grades:
        if grade.assignment_id in columns:
            value = 100 * grade.score / maxima[grade.assignment_id] if percent else grade.score
            cells[student_key(grade.student_id)][grade.assignment_id] = number(value)
    return cells


def canvas_table(grades: list[Grade], roster: Roster | None = None, assignments: list[str] | None = None,
                 titles: dict[str, str] | None = None, percent: bool = False) -> Table:
    """The Canvas gradebook import: identity columns, ``Points Possible`` row, one column per assignment."""
    notes: list[str] = []
    columns, maxima = _columns(grades, assignments)
    titles = titles or {}
    header = CANVAS_IDENTITY + [titles.get(a, a) for a in columns]
    points = [number(100.0 if percent else maxima[a]) for a in columns]
    rows = [["Points Possible", "", "", "", ""] + points]
    cells = _scores(grades, columns, maxima, percent, notes)
    for student in _students(grades, roster, notes):
        identity = [student.sortable_name, student.lms_user_id, student.sis_user_id, _canvas_login(student),
                    student.section]
        scores = cells.get(student_key(student.id), {})
        rows.append(identity + [scores.get(a, "") for a in columns])
    return Table(header, rows, notes)


def _canvas_login(student: Student) -> str:
    """Canvas's ``SIS Login ID``: the roster's, else the course's student id when the roster gives Canvas
    no other way to find the student (no ``lms_user_id``, no ``sis_user_id``)."""
    if student.sis_login_id or student.lms_user_id or student.sis_user_id:
        return student.sis_login_id
    return student.id


def moodle_table(grades: list[Grade], roster: Roster | None = None, assignments: list[str] | None = None,
                 titles: dict[str, str] | None = None, percent: bool = False) -> Table:
    """The Moodle CSV grade import: identity columns (map one on import), one column per assignment."""
    notes: list[str] = []
    columns, maxima = _columns(grades, assignments)
    titles = titles or {}
    header = MOODLE_IDENTITY + [titles.get(a, a) for a in columns]
    cells = _scores(grades, columns, maxima, percent, notes)
    rows = []
    for student in _students(grades, roster, notes):
        identity = [student.first_name, student.last_name, student.username or student.id, student.idnumber,
                    student.email]
        scores = cells.get(student_key(student.id), {})
        rows.append(identity + [scores.get(a, "-") for a in columns])
    if not percent and any(m > 100 for m in maxima.values()):
        notes.append("an assignment is worth more than 100 points, Moodle's default largest grade: "
                     "use --percent or raise the grade items' maximum")
    return Table(header, rows, notes)


def write_table(table: Table, path: Path) -> None:
    """Write ``table`` as CSV: UTF-8 without a byte-order mark, comma-separated, quoted where needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(table.header)
        writer.writerows(table.rows)


def parse_titles(values: list[str] | None) -> dict[str, str]:
    """``["ex01_attention_basics=Exercise 1 (4711)", ...]`` -> {assignment id: LMS column title}."""
    titles: dict[str, str] = {}
    for value in values or []:
        assignment_id, sep, title = value.partition("=")
        if not sep or not assignment_id.strip() or not title.strip():
            raise ExportError(f"--title needs ASSIGNMENT=TITLE, got {value!r}")
        titles[assignment_id.strip()] = title.strip()
    return titles


def export(grades_csv: Path, lms: str, out: Path, roster: Roster | None = None,
           assignments: list[str] | None = None, titles: dict[str, str] | None = None,
           percent: bool = False) -> Table:
    """Write ``grades_csv`` in ``lms``'s import layout to ``out``; return the table (with its notes)."""
    builders = {"canvas": canvas_table, "moodle": moodle_table}
    if lms not in builders:
        raise ExportError(f"unknown LMS {lms!r}; known: {', '.join(LMS_NAMES)}")
    table = builders[lms](read_grades(grades_csv), roster, assignments, titles, percent)
    write_table(table, out)
    return table
