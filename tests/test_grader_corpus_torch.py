"""The grading command on a PyTorch exercise (ex03): other correct styles, plausible mistakes, cheats.

The ex01 corpus (``test_grader_corpus.py``) covers broken, endless and malicious notebooks; this one
checks what only a PyTorch exercise can show: ``torch.allclose``/``torch.testing`` monkeypatching, an
always-equal Tensor subclass with the right shapes, and correct solutions written another way (the
exercise's ``CORRECT`` answers in ``tests/other_solutions``) that must still earn full marks. Real
grading runs, no mocks.
"""

from __future__ import annotations

import csv
import subprocess
import sys

import nbformat
import pytest
from conftest import ROOT, release_notebook, solved_release
from corpus import fake_tensors, other_solutions, with_answers, with_prefix
from test_grader_corpus import MONKEYPATCH

ASSIGNMENT = "ex03_self_attention"
DATA = other_solutions(ASSIGNMENT)
MISTAKES = list(DATA.WRONG.items())[:2]
TORCH_MONKEYPATCH = MONKEYPATCH + '''
import torch, torch.testing
torch.allclose = lambda *a, **k: True
torch.testing.assert_close = lambda *a, **k: None
torch.equal = lambda *a, **k: True
torch.Tensor.__eq__ = lambda self, other: torch.ones((), dtype=torch.bool)
torch.isclose = lambda a, b, *x, **k: torch.ones_like(torch.as_tensor(a), dtype=torch.bool)
'''


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    solved, untouched = solved_release(ASSIGNMENT), release_notebook(ASSIGNMENT)
    notebooks = {
        "full": solved,
        "other_style": with_answers(solved, DATA.CORRECT),
        "monkeypatch": with_prefix(untouched, TORCH_MONKEYPATCH),
        "fake_tensor": fake_tensors(untouched, DATA.CORRECT),
    }
    for index, (_, (answers, _)) in enumerate(MISTAKES):
        notebooks[f"mistake_{index}"] = with_answers(with_answers(solved, DATA.CORRECT), answers)
    submissions = tmp_path_factory.mktemp("torch_corpus")
    for student, notebook in notebooks.items():
        folder = submissions / student / ASSIGNMENT
        folder.mkdir(parents=True)
        nbformat.write(notebook, folder / f"{ASSIGNMENT}.ipynb")
    out = submissions.parent / "torch_corpus_out"
    completed = subprocess.run(
        [sys.executable, "-m", "autograder", "grade", str(submissions), "--out", str(out),
         "--assignment", ASSIGNMENT, "--workers", "2"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    with open(out / "grades.csv") as handle:
        return {r["student_id"]: r for r in csv.DictReader(handle)}


def points(row) -> tuple[float, float]:
    return float(row["score"]), float(row["max_score"])


@pytest.mark.parametrize("student", ["full", "other_style"])
def test_correct_solutions_in_any_style_get_full_marks(rows, student):
    score, maximum = points(rows[student])
    assert rows[student]["status"] == "graded" and score == maximum > 0, rows[student]


@pytest.mark.parametrize("index", range(len(MISTAKES)))
def test_plausible_mistakes_lose_exactly_their_points(rows, index):
    name, (_, must_fail) = MISTAKES[index]
    row = rows[f"mistake_{index}"]
    score, maximum = points(row)
    assert row["status"] == "graded" and 0 < score < maximum, row
    lost = sorted(test for test in row if test.startswith("test_") and row[test] and float(row[test]) == 0)
    assert lost == sorted(must_fail), f"the mistake {name!r} should cost exactly {must_fail}: {row}"


@pytest.mark.parametrize("student", ["monkeypatch", "fake_tensor"])
def test_cheats_earn_nothing(rows, student):
    assert rows[student]["status"] == "graded"
    assert points(rows[student])[0] == 0, rows[student]
