"""The grading command on a PyTorch exercise (ex03): other correct styles, plausible mistakes, cheats.

The ex01 corpus (``test_grader_corpus.py``) covers broken, endless and malicious notebooks; this one
checks what only a PyTorch exercise can show: ``torch.allclose``/``torch.testing`` monkeypatching, an
always-equal tensor look-alike, and a correct solution written another way (einsum, a large negative
fill) that must still earn full marks. Real nbgrader runs, no mocks.
"""

from __future__ import annotations

import csv
import subprocess
import sys

import nbformat
import pytest
from conftest import ROOT, release_notebook, solved_release
from other_solutions.ex03_self_attention import SDPA_INVERTED_MASK, SDPA_UNSCALED
from test_grader_corpus import MONKEYPATCH, with_answer_prefix, with_function

ASSIGNMENT = "ex03_self_attention"

EINSUM_SDPA = '''
def scaled_dot_product_attention(q, k, v, mask=None):
    scores = torch.einsum("...qd,...kd->...qk", q, k) * q.shape[-1] ** -0.5
    if mask is not None:
        scores = scores.masked_fill(mask.logical_not(), -1e9)
    weights = scores.softmax(dim=-1)
    if mask is not None:
        weights = weights * mask.any(dim=-1, keepdim=True)
    return torch.einsum("...qk,...kd->...qd", weights, v), weights
'''
TORCH_MONKEYPATCH = MONKEYPATCH + '''
torch.equal = lambda *a, **k: True
torch.Tensor.__eq__ = lambda self, other: torch.ones((), dtype=torch.bool)
torch.isclose = lambda a, b, *x, **k: torch.ones_like(torch.as_tensor(a), dtype=torch.bool)
'''
FAKE_TENSOR = '''
class Anything(torch.Tensor):
    def __eq__(self, other): return True
    def allclose(self, *a, **k): return True
def scaled_dot_product_attention(q, k, v, mask=None):
    out = torch.zeros(*q.shape[:-1], v.shape[-1]).as_subclass(Anything)
    return out, torch.zeros(*q.shape[:-1], k.shape[-2]).as_subclass(Anything)
'''


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    solved, untouched = solved_release(ASSIGNMENT), release_notebook(ASSIGNMENT)
    function = "scaled_dot_product_attention"
    notebooks = {
        "full": solved,
        "einsum": with_function(solved, function, EINSUM_SDPA),
        "inverted_mask": with_function(solved, function, SDPA_INVERTED_MASK),
        "unscaled": with_function(solved, function, SDPA_UNSCALED),
        "monkeypatch": with_answer_prefix(untouched, function, TORCH_MONKEYPATCH),
        "fake_tensor": with_function(untouched, function, FAKE_TENSOR),
    }
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


@pytest.mark.parametrize("student", ["full", "einsum"])
def test_correct_solutions_in_any_style_get_full_marks(rows, student):
    score, maximum = points(rows[student])
    assert rows[student]["status"] == "graded" and score == maximum > 0, rows[student]


@pytest.mark.parametrize("student", ["inverted_mask", "unscaled"])
def test_plausible_mistakes_lose_the_attention_points(rows, student):
    row = rows[student]
    score, maximum = points(row)
    assert row["status"] == "graded" and 0 < score < maximum, row
    assert float(row["test_sdpa_mask"]) == 0, f"{student} kept the masked-attention points: {row}"
    if student == "unscaled":
        assert float(row["test_sdpa_no_mask"]) == 0, row


@pytest.mark.parametrize("student", ["monkeypatch", "fake_tensor"])
def test_cheats_earn_nothing(rows, student):
    assert rows[student]["status"] == "graded"
    assert points(rows[student])[0] == 0, rows[student]
