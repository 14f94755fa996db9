"""Bad input stays safe in a class run of the grading command (a folder of submissions, a roster, a due
date): every student gets the right row, and nothing is lost or overwritten.

Ids as they come from LMS exports and JupyterHub logins: an e-mail address of more than 100 characters
with non-ASCII letters (its kernel socket path used to overflow), a name with spaces, a folder whose "ë"
is spelled the macOS way (NFD) while the roster spells it as one code point (NFC). Plus a student on
the roster with no submission, a submitter not on the roster, a late and an on-time submission (nbgrader's
``timestamp.txt``), and a folder for an assignment that does not exist. Real nbgrader runs, no mocks.
The exchange itself (submit twice, collect, late, unreleased) is tested in ``test_exchange.py``.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import unicodedata

import nbformat
import pytest
from conftest import ASSIGNMENTS, ROOT, release_notebook, solved_release

from autograder.classroom import class_jobs
from autograder.grade import Job
from autograder.lateness import duration, late_note, parse_due_dates, parse_time
from autograder.roster import Roster, Student

ASSIGNMENT = ASSIGNMENTS[0]
LONG_ID = ("zoë.müller-lüdenscheidt.with.a.rather.long.address.for.testing@"
           "students.universität-beispiel.example.org")
SPACED_ID = "Ana María López"
NFC_ID = "zoë"
NFD_ID = unicodedata.normalize("NFD", NFC_ID)
DUE = "2026-01-11 00:00 Europe/Berlin"  # 2026-01-10 23:00 UTC
ON_TIME = "2026-01-10 12:00:00.000000 UTC"
LATE = "2026-01-12 08:30:00.500000 UTC"


def submit(submissions, student, notebook, timestamp=None, assignment=ASSIGNMENT, name=None):
    folder = submissions / student / assignment
    folder.mkdir(parents=True)
    nbformat.write(notebook, folder / (name or f"{assignment}.ipynb"))
    if timestamp:
        (folder / "timestamp.txt").write_text(timestamp)
        (folder / "submission_secret.txt").write_text(f"secret of {student}")
    return folder


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("class")
    submissions = root / "submissions"
    solved, untouched = solved_release(ASSIGNMENT), release_notebook(ASSIGNMENT)
    submit(submissions, LONG_ID, solved, ON_TIME)
    submit(submissions, SPACED_ID, solved, LATE)
    submit(submissions, NFD_ID, solved)
    submit(submissions, "mallory", untouched, ON_TIME)
    submit(submissions, "bob", solved, ON_TIME, assignment="ex1", name=f"{ASSIGNMENT}.ipynb")
    roster = root / "roster.csv"
    with open(roster, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([["id", "email"], [LONG_ID, LONG_ID], [SPACED_ID, ""], [NFC_ID, ""],
                                      ["bob", ""], ["dave", ""]])
    out = root / "out"
    command = [sys.executable, "-m", "autograder", "grade", str(submissions), "--out", str(out),
               "--assignment", ASSIGNMENT, "--roster", str(roster), "--due", f"{ASSIGNMENT}={DUE}",
               "--cell-timeout", "20"]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    with open(out / "grades.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return {"rows": rows, "by": {(r["student_id"], r["assignment_id"]): r for r in rows}, "out": out,
            "submissions": submissions, "roster": roster}


def full(row) -> bool:
    return row["status"] == "graded" and float(row["score"]) == float(row["max_score"]) > 0


def test_one_row_each_and_no_more(run):
    expected = {(LONG_ID, ASSIGNMENT), (SPACED_ID, ASSIGNMENT), (NFD_ID, ASSIGNMENT), ("mallory", ASSIGNMENT),
                ("bob", "ex1"), ("bob", ASSIGNMENT), ("dave", ASSIGNMENT)}
    assert [(r["student_id"], r["assignment_id"]) for r in run["rows"]] == sorted(expected), (
        "one row per student and assignment, ids kept byte for byte, sorted")


def test_long_non_ascii_id_is_graded_in_full(run):
    row = run["by"][(LONG_ID, ASSIGNMENT)]
    assert len(LONG_ID) > 100
    assert full(row), row
    assert "late" not in row["detail"]
    feedback = run["out"] / "feedback" / LONG_ID / ASSIGNMENT
    assert (feedback / f"{ASSIGNMENT}.html").is_file()
    assert (feedback / "timestamp.txt").read_text() == ON_TIME, "release_feedback needs the submission time"
    assert (feedback / "submission_secret.txt").read_text() == f"secret of {LONG_ID}"


def test_spaces_and_lateness(run):
    row = run["by"][(SPACED_ID, ASSIGNMENT)]
    assert full(row), "a late submission is graded like any other"
    assert "late: submitted 2026-01-12 08:30:00 UTC, 1 d 9 h after the due date 2026-01-10 23:00:00 UTC" in \
        row["detail"], row["detail"]


def test_unicode_spellings_are_one_student(run):
    row = run["by"][(NFD_ID, ASSIGNMENT)]
    assert full(row) and "not on the roster" not in row["detail"], row
    assert (NFC_ID, ASSIGNMENT) not in run["by"], "no 'no submission' row for the other spelling"
    assert "no submission time recorded" in row["detail"], "a due date without timestamp.txt is said so"


def test_roster_rows(run):
    dave = run["by"][("dave", ASSIGNMENT)]
    assert dave["status"] == "no submission" and float(dave["score"]) == 0
    assert float(dave["max_score"]) == float(run["by"][(LONG_ID, ASSIGNMENT)]["max_score"]) > 0
    assert not (run["out"] / "feedback" / "dave").exists(), (
        "no feedback page without a submission (nbgrader release_feedback would need its timestamp.txt)")
    mallory = run["by"][("mallory", ASSIGNMENT)]
    assert mallory["status"] == "graded" and "not on the roster" in mallory["detail"]
    assert float(mallory["score"]) == 0


def test_unknown_assignment_keeps_its_row_and_the_student_is_still_missing(run):
    assert run["by"][("bob", "ex1")]["status"] == "unknown assignment"
    assert run["by"][("bob", ASSIGNMENT)]["status"] == "no submission"


def test_nothing_was_overwritten(run):
    pages = {p.parent.parent.name for p in (run["out"] / "feedback").rglob(f"{ASSIGNMENT}.html")}
    assert pages == {LONG_ID, SPACED_ID, NFD_ID, "mallory"}, "each submission has its own feedback folder"
    for folder in run["submissions"].rglob("*"):
        if folder.is_file():
            assert folder.stat().st_size > 0, f"{folder} was truncated"


@pytest.mark.parametrize("option,message", [(["--due", f"{ASSIGNMENT}=2026-01-11 00:00"], "no time zone"),
                                            (["--due", "2026-01-11"], "ASSIGNMENT=TIME"),
                                            (["--roster", "/nonexistent/r.csv"], "cannot read the roster")])
def test_bad_class_options_are_refused(tmp_path, option, message):
    completed = subprocess.run([sys.executable, "-m", "autograder", "grade", str(tmp_path), "--out",
                                str(tmp_path / "out"), *option], cwd=ROOT, capture_output=True, text=True)
    assert completed.returncode == 2 and message in completed.stderr, completed.stderr
    assert not (tmp_path / "out").exists(), "nothing is written before the options are understood"


def test_time_reading():
    assert parse_time("2026-01-11 00:00 Europe/Berlin") == parse_time("2026-01-10T23:00:00Z")
    assert parse_time("2026-01-10 23:00 UTC") == parse_time("2026-01-11T00:00+01:00")
    due = parse_time("2026-01-10 23:00Z")
    assert parse_due_dates([f"{ASSIGNMENT} = 2026-01-10 23:00 UTC"]) == {ASSIGNMENT: due}
    due = parse_time("2026-01-10 23:00 UTC")
    assert late_note(parse_time("2026-01-10 23:00 UTC"), due) == "", "on the due time is on time"
    assert duration(parse_time("2026-01-10 23:00:42 UTC") - due) == "42 s"
    assert duration(parse_time("2026-01-11 00:05 UTC") - due) == "1 h 5 min"


def test_class_jobs_without_grading(tmp_path):
    roster = Roster([Student("a"), Student("b")])
    jobs = [Job("a", "ex_one", tmp_path / "a" / "ex_one" / "ex_one.ipynb"),
            Job("z", "ex_one", None, "missing notebook")]
    result = class_jobs(jobs, tmp_path, ["ex_one", "ex_two"], roster)
    assert [(j.student_id, j.assignment_id, j.status) for j in result] == [
        ("a", "ex_one", ""), ("a", "ex_two", "no submission"), ("b", "ex_one", "no submission"),
        ("b", "ex_two", "no submission"), ("z", "ex_one", "missing notebook")]
    assert "not on the roster" in result[-1].detail
