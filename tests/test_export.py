"""Grades in the layouts Canvas and Moodle import: columns, values, identities, and bad input refused.

Layouts checked against the importers' documented and coded behaviour:
- Canvas (GradebookImporter): header ``Student, ID, SIS User ID, SIS Login ID, Section``, then one column
  per assignment; a ``Points Possible`` row; students found by ID, SIS User ID, SIS Login ID or name.
- Moodle (gradeimport_csv): one identifier column mapped on import (username, e-mail, ID number); one
  column per grade item; ``-`` is "no grade"; an unknown user aborts the import, so only roster
  students are written when a roster is given.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import unicodedata

import pytest
from conftest import ROOT

from autograder.export import (
    CANVAS_IDENTITY,
    MOODLE_IDENTITY,
    ExportError,
    canvas_table,
    moodle_table,
    number,
    read_grades,
)
from autograder.roster import Roster, RosterError, read_roster

LONG_ID = ("zoë.müller-lüdenscheidt.with.a.rather.long.address.for.testing@"
           "students.universität-beispiel.example.org")
SPACED = "Ana María López"
A1, A2 = "ex01_attention_basics", "ex02_rnn_attention"
GRADES = [
    # student_id, assignment_id, score, max_score, status, detail, a test column
    ("alice", A1, "10", "10", "graded", "all tests passed", "4"),
    ("alice", A2, "7.5", "12", "graded", "failed: test_x", ""),
    ("bob", A1, "0", "10", "no submission", "on the roster, but no submission was found", ""),
    (LONG_ID, A1, "10", "10", "graded", "all tests passed", "4"),
    (unicodedata.normalize("NFD", SPACED), A1, "3.25", "10", "timeout", "stopped after 30 s", "0"),
    ("mallory", A1, "10", "10", "graded", "student id not on the roster; all tests passed", "4"),
    ("alice", "ex1", "0", "0", "unknown assignment", "folder alice/ex1/ names no assignment", ""),
]
ROSTER = [
    ["id", "first_name", "last_name", "email", "lms_user_id", "sis_user_id", "sis_login_id", "section",
     "username", "idnumber"],
    ["alice", "Alice", "Liddell", "alice@example.org", "101", "S-1", "aliddell", "Section A", "aliddell",
     "7001"],
    ["bob", "Bob", "Byte", "bob@example.org", "", "", "", "Section B", "", ""],
    [LONG_ID, "Zoë", "Müller-Lüdenscheidt", LONG_ID, "103", "", "", "", "", ""],
    [SPACED, "Ana María", "López, Jr.", "ana@example.org", "", "S-4", "", "", "amlopez", ""],
    ["carol", "Carol", "Quote \"Q\"", "carol@example.org", "105", "", "", "", "", ""],
]


def write_csv(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    return path


@pytest.fixture()
def grades_csv(tmp_path):
    header = ["student_id", "assignment_id", "score", "max_score", "status", "detail", "test_softmax"]
    return write_csv(tmp_path / "grades.csv", [header, *GRADES])


@pytest.fixture()
def roster(tmp_path):
    return Roster.read(write_csv(tmp_path / "roster.csv", ROSTER))


def read_back(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def by_first(rows, column=0):
    return {row[column]: row for row in rows}


def test_canvas_layout_with_a_roster(grades_csv, roster):
    table = canvas_table(read_grades(grades_csv), roster)
    assert table.header == CANVAS_IDENTITY + [A1, A2], "one column per assignment, course assignments only"
    assert table.rows[0] == ["Points Possible", "", "", "", "", "10", "12"]
    rows = by_first(table.rows[1:])
    assert list(rows) == ["Liddell, Alice", "Byte, Bob", "Müller-Lüdenscheidt, Zoë", "López, Jr., Ana María",
                          "Quote \"Q\", Carol"], "roster order, every roster student"
    assert rows["Liddell, Alice"] == ["Liddell, Alice", "101", "S-1", "aliddell", "Section A", "10", "7.5"]
    assert rows["Byte, Bob"] == ["Byte, Bob", "", "", "bob", "Section B", "0", ""], (
        "no LMS id on the roster: the course id is the SIS Login ID; 'no submission' is a 0; no row is blank")
    assert rows["Müller-Lüdenscheidt, Zoë"][1:4] == ["103", "", ""]
    assert rows["Müller-Lüdenscheidt, Zoë"][5:] == ["10", ""]
    assert rows["López, Jr., Ana María"][1:4] == ["", "S-4", ""]
    assert rows["López, Jr., Ana María"][5] == "3.25", "an NFD spelling of the id finds its roster line"
    assert rows["Quote \"Q\", Carol"][5:] == ["", ""], "no row in grades.csv: empty cells change nothing"
    notes = " ".join(table.notes)
    assert "mallory" in notes and "not on the roster" in notes
    assert "timeout" in notes, "rows not graded normally are pointed out"


def test_canvas_without_a_roster_uses_the_course_ids(grades_csv):
    table = canvas_table(read_grades(grades_csv))
    rows = by_first(table.rows[1:])
    assert set(rows) == {"alice", "bob", LONG_ID, unicodedata.normalize("NFD", SPACED), "mallory"}
    assert rows[LONG_ID] == [LONG_ID, "", "", LONG_ID, "", "10", ""]


def test_moodle_layout_with_a_roster(grades_csv, roster):
    table = moodle_table(read_grades(grades_csv), roster)
    assert table.header == MOODLE_IDENTITY + [A1, A2]
    rows = by_first(table.rows, column=2)
    assert list(rows) == ["aliddell", "bob", LONG_ID, "amlopez", "carol"], "username, else the course id"
    assert rows["aliddell"] == ["Alice", "Liddell", "aliddell", "7001", "alice@example.org", "10", "7.5"]
    assert rows["bob"][5:] == ["0", "-"], "'-' is Moodle's 'no grade'"
    assert rows[LONG_ID][4] == LONG_ID, "the e-mail column can identify users on import"
    assert rows["carol"][5:] == ["-", "-"]
    assert all(row[2] for row in table.rows), "Moodle aborts on a row without its identifier"
    assert "mallory" not in {row[2] for row in table.rows}, "Moodle aborts on an unknown user"


def test_percent_and_titles(grades_csv, roster):
    titles = {A1: "Exercise 1 (4711)"}
    table = canvas_table(read_grades(grades_csv), roster, titles=titles, percent=True)
    assert table.header[5:] == ["Exercise 1 (4711)", A2]
    assert table.rows[0][5:] == ["100", "100"]
    assert by_first(table.rows[1:])["Liddell, Alice"][5:] == ["100", "62.5"]
    only = moodle_table(read_grades(grades_csv), roster, assignments=[A2])
    assert only.header == MOODLE_IDENTITY + [A2]


def test_command_line_round_trip(grades_csv, tmp_path):
    roster_csv = write_csv(tmp_path / "roster.csv", ROSTER)
    for lms, identity, who in (("canvas", CANVAS_IDENTITY, "Müller-Lüdenscheidt, Zoë"),
                               ("moodle", MOODLE_IDENTITY, LONG_ID)):
        out = tmp_path / f"{lms}.csv"
        completed = subprocess.run(
            [sys.executable, "-m", "autograder", "export", str(grades_csv), "--lms", lms, "--out", str(out),
             "--roster", str(roster_csv), "--title", f"{A2}=Exercise 2"],
            cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert completed.returncode == 0, completed.stderr
        assert "mallory" in completed.stdout, "the command names who was left out"
        rows = read_back(out)
        assert rows[0] == identity + [A1, "Exercise 2"]
        assert not out.read_bytes().startswith(b"\xef\xbb\xbf"), "no byte-order mark in the header"
        assert any(who in row for row in rows), "non-ASCII names and long ids survive the round trip"


def test_bad_input_is_refused(tmp_path, grades_csv):
    header = ["student_id", "assignment_id", "score", "max_score", "status", "detail"]
    twice = write_csv(tmp_path / "twice.csv", [header, ["a", A1, "1", "10", "graded", ""],
                                               ["a", A1, "2", "10", "graded", ""]])
    with pytest.raises(ExportError, match="second row"):
        read_grades(twice)
    with pytest.raises(ExportError, match="not a grades.csv"):
        read_grades(write_csv(tmp_path / "other.csv", [["name", "points"], ["a", "1"]]))
    with pytest.raises(ExportError, match="no graded rows for ex09"):
        canvas_table(read_grades(grades_csv), assignments=["ex09"])
    completed = subprocess.run([sys.executable, "-m", "autograder", "export", str(twice), "--lms", "canvas",
                                "--out", str(tmp_path / "x.csv")], cwd=ROOT, capture_output=True, text=True)
    assert completed.returncode == 2 and "second row" in completed.stderr


def test_numbers_are_plain_decimals():
    values = (10.0, 7.5, 1 / 3, 0.0, -0.0, 1e6)
    assert [number(x) for x in values] == ["10", "7.5", "0.3333", "0", "0", "1000000"]


def test_roster_reading(tmp_path):
    bom = tmp_path / "bom.csv"
    bom.write_bytes("\ufeffID,First_Name\n alice ,Alice\n\n".encode())
    assert [(s.id, s.first_name) for s in read_roster(bom)] == [("alice", "Alice")], (
        "a spreadsheet's BOM, header case and stray spaces are tolerated; blank lines skipped")
    nfd = write_csv(tmp_path / "nfd.csv", [["id"], [unicodedata.normalize("NFD", "zoë")], ["zoë"]])
    with pytest.raises(RosterError, match="line 3.*already on line 2"):
        read_roster(nfd)
    with pytest.raises(RosterError, match="no 'id' column"):
        read_roster(write_csv(tmp_path / "noid.csv", [["name"], ["a"]]))
    with pytest.raises(RosterError, match="cannot be a folder name"):
        read_roster(write_csv(tmp_path / "slash.csv", [["id"], ["a/b"]]))
