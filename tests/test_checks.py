"""autograder.checks: the messages students see, and resistance to tampering."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from autograder import checks


def test_close_values_pass_for_arrays_tensors_and_numbers():
    checks.check_close(np.array([1.0, 2.0]), [1.0, 2.0 + 1e-9], what="x")
    checks.check_close(torch.tensor([1.0, 2.0]), np.array([1.0, 2.0]), what="x")
    checks.check_close(3.0, 3.0, what="x")
    checks.check_close(np.array([0.0, -np.inf]), np.array([0.0, -np.inf]), what="x")


def test_known_mistake_gives_its_hint():
    with pytest.raises(AssertionError, match="Likely cause: softmax over the wrong axis"):
        checks.check_close(np.zeros(2), np.ones(2), what="w",
                           mistakes={"softmax over the wrong axis": np.zeros(2)})


def test_unknown_mistake_reports_where_and_how_much():
    with pytest.raises(AssertionError, match=r"at index \(1,\) expected 2 but found 5"):
        checks.check_close(np.array([1.0, 5.0]), np.array([1.0, 2.0]), what="x")


def test_nan_is_named():
    with pytest.raises(AssertionError, match="NaN or infinity"):
        checks.check_close(np.array([np.nan, 1.0]), np.array([0.5, 0.5]), what="x")


@pytest.mark.parametrize("value", [None, [1.0, 2.0], "1", True, object()])
def test_non_numeric_results_are_refused(value):
    with pytest.raises(AssertionError, match="should be an array of numbers"):
        checks.check_close(value, np.array([1.0, 2.0]), what="x")


def test_object_claiming_equality_is_refused():
    class AlwaysEqual:
        def __eq__(self, other):
            return True

    with pytest.raises(AssertionError):
        checks.check_close(AlwaysEqual(), np.ones(2), what="x")
    with pytest.raises(AssertionError):
        checks.check_true(AlwaysEqual(), "must be a real boolean")


def test_shape_hints():
    with pytest.raises(AssertionError, match="missing or extra transpose"):
        checks.check_shape(np.zeros((3, 2)), (2, 3), what="x")
    with pytest.raises(AssertionError, match="number of dimensions"):
        checks.check_shape(np.zeros((3, 1)), (3,), what="x")


def test_dtype():
    checks.check_dtype(torch.zeros(2, dtype=torch.float64), torch.float64, what="x")
    with pytest.raises(AssertionError, match="dtype"):
        checks.check_dtype(torch.zeros(2), torch.float64, what="x")


def test_patching_numpy_does_not_change_verdicts(monkeypatch):
    monkeypatch.setattr(np, "allclose", lambda *a, **k: True)
    monkeypatch.setattr(np, "abs", lambda x: np.zeros_like(x))
    monkeypatch.setattr(np, "all", lambda *a, **k: True)
    with pytest.raises(AssertionError):
        checks.check_close(np.zeros(2), np.ones(2), what="x")


def test_check_raises_returns_the_exception_and_names_what_went_wrong():
    error = checks.check_raises(lambda: int("x"), ValueError, what="int('x')")
    assert "invalid literal" in str(error)
    with pytest.raises(AssertionError, match=r"should raise ValueError, but returned normally\. Check"):
        checks.check_raises(lambda: 1, ValueError, what="f()", hint="Check the input.")
    with pytest.raises(AssertionError, match="should raise ValueError, but raised KeyError"):
        checks.check_raises(lambda: {}["k"], ValueError, what="f()")
    with pytest.raises(NotImplementedError):  # an unanswered task stays "not answered yet"
        checks.check_raises(lambda: (_ for _ in ()).throw(NotImplementedError()), ValueError, what="f()")


def test_default_tolerance_follows_dtype_and_magnitude():
    atol32, rtol32 = checks.default_tolerance(np.zeros(3, np.float32), np.array([40.0, 1.0, 2.0]))
    assert rtol32 == pytest.approx(np.sqrt(np.finfo(np.float32).eps)) and atol32 == pytest.approx(40 * rtol32)
    atol64, rtol64 = checks.default_tolerance(np.zeros(3), np.ones(3))
    assert rtol64 == pytest.approx(np.sqrt(np.finfo(np.float64).eps)) and atol64 == pytest.approx(rtol64)
    # a float32 result computed in another order passes; a real mistake does not
    checks.check_close(np.float32(40.0) + np.float32(2e-5), 40.0, what="x")
    with pytest.raises(AssertionError):
        checks.check_close(np.array([1.0, 2.0]), np.array([1.0, 2.1]), what="y")
