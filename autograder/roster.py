"""The class list: who is enrolled, and under which identities an LMS knows them.

A roster is a CSV file in nbgrader's own student format, so ``nbgrader db student import ROSTER`` reads
the same file (it ignores the columns it does not know)::

    id,first_name,last_name,email,lms_user_id,sis_user_id,sis_login_id,section,username,idnumber

Only ``id`` is required: the course's student id, i.e. the folder name under ``SUBMISSIONS/`` and, with
nbgrader's exchange, the student's user name (the OS user, or the JupyterHub user on a hub whose servers
all run as ``jovyan``). The other columns say who the student is elsewhere:

- ``first_name``, ``last_name``, ``email``: nbgrader's own columns (shown by the formgrader);
- ``lms_user_id`` (nbgrader's column): the LMS's own user id, Canvas's ``ID`` column;
- ``sis_user_id``, ``sis_login_id``, ``section``: Canvas's ``SIS User ID``, ``SIS Login ID``, ``Section``;
- ``username``, ``idnumber``: Moodle's user name and ID number (``email`` is Moodle's e-mail address).

Ids are compared after Unicode NFC normalisation and trimming: a folder unpacked on macOS spells "ë" as
two code points (NFD), a roster typed elsewhere as one, and both are the same student.
"""

from __future__ import annotations

import csv
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path


class RosterError(ValueError):
    """The roster file cannot be used; the message names the file, the line and the reason."""


@dataclass(frozen=True)
class Student:
    """One line of the roster."""

    id: str
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    lms_user_id: str = ""
    sis_user_id: str = ""
    sis_login_id: str = ""
    section: str = ""
    username: str = ""
    idnumber: str = ""

    @property
    def sortable_name(self) -> str:
        """"Last, First" as LMSs sort and match names; the id when the roster gives no name."""
        if self.last_name and self.first_name:
            return f"{self.last_name}, {self.first_name}"
        return self.last_name or self.first_name or self.id


COLUMNS = [f.name for f in fields(Student)]


def student_key(student_id: str) -> str:
    """The form in which two spellings of one student id compare equal (NFC, no outer spaces)."""
    return unicodedata.normalize("NFC", student_id).strip()


def read_roster(path: Path) -> list[Student]:
    """Read a roster CSV (UTF-8, a spreadsheet's byte-order mark allowed); raise RosterError if unusable."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise RosterError(f"cannot read the roster {path}: {error}") from error
    if not rows:
        raise RosterError(f"the roster {path} is empty")
    header = [name.strip().lower() for name in rows[0]]
    if "id" not in header:
        raise RosterError(f"the roster {path} has no 'id' column (its header is: {', '.join(rows[0])})")
    students: list[Student] = []
    first_line: dict[str, int] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        values = {name: cell.strip() for name, cell in zip(header, row, strict=False) if name in COLUMNS}
        student_id = student_key(values.get("id", ""))
        where = f"{path}, line {line}"
        if not student_id:
            raise RosterError(f"{where}: the id is empty")
        if "/" in student_id or "\0" in student_id or student_id in (".", ".."):
            raise RosterError(f"{where}: {student_id!r} cannot be a folder name, so no submission has it")
        if student_id in first_line:
            raise RosterError(f"{where}: the id {student_id!r} is already on line {first_line[student_id]}")
        first_line[student_id] = line
        students.append(Student(**{**values, "id": student_id}))
    return students


class Roster:
    """The students of a roster, looked up by id in any Unicode spelling."""

    def __init__(self, students: list[Student]):
        self.students = list(students)
        self._by_key = {student_key(s.id): s for s in self.students}

    @classmethod
    def read(cls, path: Path) -> Roster:
        return cls(read_roster(path))

    def get(self, student_id: str) -> Student | None:
        return self._by_key.get(student_key(student_id))

    def __contains__(self, student_id: str) -> bool:
        return student_key(student_id) in self._by_key

    def __iter__(self) -> Iterator[Student]:
        return iter(self.students)

    def __len__(self) -> int:
        return len(self.students)
