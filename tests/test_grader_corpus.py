"""The instructor's grading command against an adversarial corpus of ex01 submissions.

Every submission gets a row with a stated status; cheats do not earn the points they target; nothing
crashes the run or changes another student's row. Real nbgrader runs, no mocks.
"""

from __future__ import annotations

import copy
import csv
import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT, nbgrader_meta, release_notebook, solved_release, source_notebook
from corpus import always_equal, other_solutions, warning_on_call, with_answers, with_prefix

from autograder.feedback import hidden_lines
from autograder.grade import sandbox_available

ASSIGNMENT = "ex01_attention_basics"
WALL = 60
CELL_TIMEOUT = 10
SENTINEL_NAME = "CORPUS_WROTE_HERE"


MISTAKES = list(other_solutions(ASSIGNMENT).WRONG.items())[:2]


def mistaken(notebook, index: int):
    """``notebook`` with the answers of the ``index``-th plausible mistake of the exercise."""
    answers, _ = MISTAKES[index][1]
    return with_answers(notebook, answers)


def grade_cell_indices(notebook):
    return [i for i, c in enumerate(notebook.cells) if nbgrader_meta(c).get("grade")
            and not nbgrader_meta(c).get("solution")]


MONKEYPATCH = '''
import numpy as np, numpy.testing
np.allclose = lambda *a, **k: True
np.isclose = lambda a, b, *x, **k: np.ones(np.shape(a), bool)
np.array_equal = lambda *a, **k: True
np.testing.assert_allclose = lambda *a, **k: None
np.testing.assert_array_almost_equal = lambda *a, **k: None
import autograder.checks as checks
for name in ("check_close", "check_shape", "check_true", "check_dtype", "as_numpy"):
    setattr(checks, name, lambda *a, **k: None)
    globals()[name] = lambda *a, **k: None
import builtins
builtins.abs = lambda x: 0
'''
def steal_source(repo: Path) -> str:
    return f'''
import glob, json, os, sqlite3
stolen = []
for pattern in ["../../solutions/**/*.ipynb", "../../../source/**/*.ipynb", "../../../../**/*.ipynb",
                "{repo}/solutions/**/*.ipynb"]:
    for path in glob.glob(pattern, recursive=True)[:50]:
        try:
            for cell in json.load(open(path))["cells"]:
                if "BEGIN SOLUTION" in "".join(cell["source"]):
                    stolen.append("".join(cell["source"]))
        except Exception:
            pass
for path in glob.glob("../../../*.db") + glob.glob("{repo}/grading/*.db"):
    try:
        sqlite3.connect(path).execute("update grade_cell set max_score = 0")
    except Exception:
        pass
for code in stolen:
    exec(code)
'''


def write_outside(targets: list[Path]) -> str:
    lines = ["import os"]
    for target in targets:
        lines.append(f"try:\n    open({str(target)!r}, 'w').write('x')\nexcept Exception:\n    pass")
    lines.append("try:\n    open('../../../gradebook.db', 'w').write('garbage')\nexcept Exception:\n    pass")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    submissions = root / "submissions"
    outside = [ROOT / SENTINEL_NAME, root / SENTINEL_NAME, submissions / "full" / SENTINEL_NAME]
    solved, untouched = solved_release(ASSIGNMENT), release_notebook(ASSIGNMENT)
    tests = grade_cell_indices(solved)

    edited_tests = copy.deepcopy(mistaken(solved, 0))
    for index in tests:
        edited_tests.cells[index].source = "pass"
        edited_tests.cells[index].metadata.nbgrader["points"] = 100
    deleted = copy.deepcopy(solved)
    del deleted.cells[tests[0]]
    duplicated = copy.deepcopy(solved)
    pasted = copy.deepcopy(duplicated.cells[tests[0]])
    pasted.id = "pasted-copy"  # JupyterLab's copy/paste gives a new cell id and keeps the metadata
    duplicated.cells.insert(tests[0], pasted)
    swallow = ("import time\nwhile True:\n    try:\n        time.sleep(0.2)\n"
               "    except KeyboardInterrupt:\n        pass")

    notebooks = {
        "full": solved,
        "library_warning": warning_on_call(solved),
        "untouched": untouched,
        "wrong_a": mistaken(solved, 0),
        "wrong_b": mistaken(solved, 1),
        "endless_loop": with_prefix(solved, "while True:\n    pass"),
        "swallows_interrupt": with_prefix(solved, swallow),
        "sys_exit": with_prefix(solved, "import sys\nsys.exit()"),
        "os_exit": with_prefix(solved, "import os\nos._exit(1)"),
        "deleted_test": deleted,
        "edited_tests": edited_tests,
        "duplicated_cell": duplicated,
        "huge_output": with_prefix(solved, "print('x' * 30_000_000)\nfor i in range(100_000):\n    print(i)"),
        "monkeypatch": with_prefix(untouched, MONKEYPATCH),
        "always_equal": always_equal(untouched),
        "steal_solutions": with_prefix(untouched, steal_source(ROOT)),
        "write_outside": with_prefix(solved, write_outside(outside)),
        # 6 GiB: more than the 2 GiB limit below, less than the machine has, so only the limit stops it
        "memory_hog": with_prefix(solved, "import numpy as np\nhog = np.ones(6 * 2**27)"),
    }
    for student, notebook in notebooks.items():
        folder = submissions / student / ASSIGNMENT
        folder.mkdir(parents=True)
        nbformat.write(notebook, folder / f"{ASSIGNMENT}.ipynb")
    (submissions / "malformed" / ASSIGNMENT).mkdir(parents=True)
    (submissions / "malformed" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").write_text('{"cells": [')
    (submissions / "renamed" / ASSIGNMENT).mkdir(parents=True)
    nbformat.write(solved, submissions / "renamed" / ASSIGNMENT / f"{ASSIGNMENT} (1).ipynb")
    (submissions / "missing" / ASSIGNMENT).mkdir(parents=True)
    (submissions / "missing" / ASSIGNMENT / "notes.txt").write_text("forgot the notebook")
    (submissions / "loose").mkdir()
    nbformat.write(solved, submissions / "loose" / f"{ASSIGNMENT}.ipynb")  # outside its folder
    (submissions / "wrong_folder" / "ex1").mkdir(parents=True)
    nbformat.write(solved, submissions / "wrong_folder" / "ex1" / f"{ASSIGNMENT}.ipynb")
    (submissions / "two_notebooks" / ASSIGNMENT).mkdir(parents=True)
    for name in ("a.ipynb", "b.ipynb"):
        nbformat.write(solved, submissions / "two_notebooks" / ASSIGNMENT / name)

    out = root / "out"
    command = [sys.executable, "-m", "autograder", "grade", str(submissions), "--out", str(out),
               "--assignment", ASSIGNMENT, "--workers", "2", "--cell-timeout", str(CELL_TIMEOUT),
               "--wall-limit", str(WALL), "--memory-mb", "2048"]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    with open(out / "grades.csv") as handle:
        rows = {r["student_id"]: r for r in csv.DictReader(handle)}
    return {"rows": rows, "out": out, "outside": outside, "stdout": completed.stdout,
            "submissions": submissions}


def score(row) -> float:
    return float(row["score"])


def maximum(row) -> float:
    return float(row["max_score"])


def test_every_submission_has_a_row(corpus):
    expected = {p.name for p in corpus["submissions"].iterdir()}
    assert set(corpus["rows"]) == expected
    for student in expected:
        assignment = corpus["rows"][student]["assignment_id"]
        feedback = corpus["out"] / "feedback" / student / assignment / f"{assignment}.html"
        assert feedback.is_file(), f"no feedback for {student}"
    assert (corpus["out"] / "summary.txt").is_file() and (corpus["out"] / "summary.png").is_file()
    assert "[1/" in corpus["stdout"], "no progress printed"


def test_full_and_untouched(corpus):
    rows = corpus["rows"]
    assert rows["full"]["status"] == "graded" and score(rows["full"]) == maximum(rows["full"]) > 0
    warned = rows["library_warning"]
    assert score(warned) == maximum(warned), f"a warning on stderr cost points: {warned}"
    assert rows["untouched"]["status"] == "graded" and score(rows["untouched"]) == 0


@pytest.mark.parametrize("index", [0, 1])
def test_plausible_wrong_answers_lose_their_points(corpus, index):
    name, (_, must_fail) = MISTAKES[index]
    row = corpus["rows"][f"wrong_{'ab'[index]}"]
    assert row["status"] == "graded"
    assert 0 < score(row) < maximum(row)
    kept = [test for test in must_fail if float(row[test]) > 0]
    assert not kept, f"the mistake {name!r} kept the points of {kept}: {row}"


def test_endless_loop_is_stopped_and_the_rest_graded(corpus):
    row = corpus["rows"]["endless_loop"]
    assert row["status"] == "timeout", row
    assert 0 < score(row) < maximum(row), "the other functions should still be graded"


def test_loop_swallowing_interrupt_costs_at_most_the_wall_limit(corpus):
    row = corpus["rows"]["swallows_interrupt"]
    assert row["status"] == "timeout", row
    assert score(row) < maximum(row)


def test_sys_exit_and_os_exit(corpus):
    rows = corpus["rows"]
    assert rows["sys_exit"]["status"] == "graded" and score(rows["sys_exit"]) < maximum(rows["sys_exit"])
    assert rows["os_exit"]["status"] == "kernel died" and score(rows["os_exit"]) == 0


def test_test_cells_are_restored(corpus):
    rows = corpus["rows"]
    assert score(rows["deleted_test"]) == maximum(rows["deleted_test"]), rows["deleted_test"]
    edited = rows["edited_tests"]
    assert maximum(edited) == maximum(rows["full"]), "edited points must not change the maximum"
    assert score(edited) < maximum(edited), "an edited test must not pass a wrong answer"
    duplicated = rows["duplicated_cell"]
    assert duplicated["status"] == "graded" and score(duplicated) == maximum(duplicated), duplicated


def test_malformed_renamed_missing(corpus):
    rows = corpus["rows"]
    assert rows["malformed"]["status"] == "malformed notebook" and score(rows["malformed"]) == 0
    assert rows["renamed"]["status"] == "graded" and "renamed" in rows["renamed"]["detail"]
    assert score(rows["renamed"]) == maximum(rows["renamed"])
    assert rows["missing"]["status"] == "missing notebook"
    assert rows["two_notebooks"]["status"] == "several notebooks"
    loose = rows["loose"]
    assert loose["status"] == "graded" and "not in loose/" in loose["detail"], loose
    assert score(loose) == maximum(loose)
    wrong = rows["wrong_folder"]
    assert wrong["status"] == "unknown assignment" and wrong["assignment_id"] == "ex1", wrong
    assert maximum(rows["missing"]) == maximum(rows["full"])


def test_huge_output_is_capped(corpus):
    row = corpus["rows"]["huge_output"]
    assert row["status"] == "graded" and score(row) == maximum(row), row
    feedback = corpus["out"] / "feedback" / "huge_output" / ASSIGNMENT / f"{ASSIGNMENT}.html"
    assert feedback.stat().st_size < 5_000_000


@pytest.mark.parametrize("student", ["monkeypatch", "always_equal"])
def test_cheats_earn_nothing(corpus, student):
    row = corpus["rows"][student]
    assert row["status"] == "graded"
    assert score(row) == 0, f"{student} earned points: {row}"


@pytest.mark.skipif(not sandbox_available(), reason="bubblewrap is not available: no file-system isolation")
def test_student_code_cannot_read_solutions_or_touch_files(corpus):
    rows = corpus["rows"]
    assert score(rows["steal_solutions"]) == 0, rows["steal_solutions"]
    assert rows["write_outside"]["status"] == "graded"
    assert score(rows["write_outside"]) == maximum(rows["write_outside"])
    for path in corpus["outside"]:
        assert not path.exists(), f"student code wrote {path}"
    assert score(rows["full"]) == maximum(rows["full"])


def test_memory_hog_is_contained(corpus):
    row = corpus["rows"]["memory_hog"]
    assert row["status"] in ("graded", "kernel died"), row
    assert score(row) < maximum(row), "the allocation should have failed under the memory limit"
    assert score(corpus["rows"]["full"]) == maximum(corpus["rows"]["full"])


def test_feedback_never_shows_hidden_tests(corpus):
    hidden = set()
    for cell in source_notebook(ASSIGNMENT).cells:
        lines = cell.source.splitlines()
        numbers = hidden_lines(cell.source, "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
        hidden |= {lines[n - 1].strip() for n in numbers if len(lines[n - 1].strip()) > 25}
    visible = json.dumps(solved_release(ASSIGNMENT))
    hidden = {line for line in hidden if json.dumps(line)[1:-1] not in visible}
    assert hidden, "ex01 should have hidden tests"
    for page in (corpus["out"] / "feedback").rglob("*.html"):
        text = html.unescape(re.sub(r"<[^>]+>", "", page.read_text(errors="replace")))
        student = page.relative_to(corpus["out"] / "feedback").parts[0]
        files = (corpus["submissions"] / student).rglob("*")
        submitted = "".join(f.read_text(errors="replace") for f in files if f.is_file())
        leaked = [line for line in hidden if line in text and json.dumps(line)[1:-1] not in submitted]
        assert not leaked, f"{page} shows hidden test code: {leaked[:3]}"


def test_regrading_gives_the_same_grades(corpus, tmp_path):
    subset = tmp_path / "subset"
    for student in ("full", "wrong_a", "malformed"):
        shutil.copytree(corpus["submissions"] / student, subset / student)
    out = tmp_path / "out"
    subprocess.run([sys.executable, "-m", "autograder", "grade", str(subset), "--out", str(out),
                    "--cell-timeout", str(CELL_TIMEOUT)], cwd=ROOT, check=True, capture_output=True)
    with open(out / "grades.csv") as handle:
        again = {r["student_id"]: r for r in csv.DictReader(handle)}
    for student, row in again.items():
        first = corpus["rows"][student]
        assert {k: v for k, v in row.items() if k != "detail"} == \
               {k: first[k] for k in row if k != "detail"}, student


def test_misuse_is_an_error(tmp_path):
    unknown = subprocess.run([sys.executable, "-m", "autograder", "grade", str(tmp_path), "--out",
                              str(tmp_path / "o"), "--assignment", "nope"], cwd=ROOT,
                             capture_output=True, text=True)
    assert unknown.returncode != 0 and "unknown assignment" in unknown.stderr
    missing = subprocess.run([sys.executable, "-m", "autograder", "grade", str(tmp_path / "absent"),
                              "--out", str(tmp_path / "o")], cwd=ROOT, capture_output=True, text=True)
    assert missing.returncode != 0 and "cannot read" in missing.stderr
