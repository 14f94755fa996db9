"""Checks used by the exercises' test cells.

Every check raises ``AssertionError`` with a message written for a student:
what was expected, what was found and, where we can tell, the likely cause.
The likely cause comes from ``mistakes``: a mapping from a hint to the result a
known wrong implementation would give on the same input (softmax over the wrong
axis, a missing scale, an inverted mask, ...). When the student's result matches
one of them, that hint is the message.

The functions the checks rely on are bound here, at import time, so that an
answer cell that later monkeypatches ``np.allclose`` or ``torch.allclose`` does
not change a verdict.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

_asarray = np.asarray
_abs = np.abs
_isfinite = np.isfinite
_all = np.all
_max = np.max
_argmax = np.argmax
_unravel_index = np.unravel_index
_where = np.where
_isnan = np.isnan
_errstate = np.errstate
_bool_ = np.bool_
_ndarray = np.ndarray
_generic = np.generic
_isinstance = isinstance
_float = float
_tuple = tuple
_finfo = np.finfo
_sqrt = np.sqrt

_TENSOR_TYPES: list[type] = []


def _is_tensor(value: Any) -> bool:
    """True for a torch tensor, without importing torch (NumPy-only exercises never load it)."""
    if not _TENSOR_TYPES:
        torch = sys.modules.get("torch")
        if torch is None:
            return False
        _TENSOR_TYPES.append(torch.Tensor)
    return _isinstance(value, _TENSOR_TYPES[0])

__all__ = ["as_numpy", "check_shape", "check_dtype", "check_close", "check_true", "check_raises",
           "default_tolerance"]


def _type_name(value: Any) -> str:
    return type(value).__name__


def as_numpy(value: Any, *, what: str) -> np.ndarray:
    """Return ``value`` as a NumPy array, refusing anything that is not numeric data.

    Accepts NumPy arrays and scalars, Python numbers and PyTorch tensors. Any
    other object (``None``, a list of tensors, an object whose ``__eq__`` always
    says yes) fails with a message naming its type.
    """
    if _is_tensor(value):
        return value.detach().cpu().numpy()
    if _isinstance(value, (_ndarray, _generic, int, _float)) and not _isinstance(value, bool):
        array = _asarray(value)
        if array.dtype.kind in "biuf":
            return array
    raise AssertionError(
        f"{what} should be an array of numbers (a NumPy array or a torch tensor), "
        f"but it is a {_type_name(value)}: {value!r:.80}. "
        "Did you forget a `return`, or return a list or tuple instead of an array?"
    )


def check_shape(value: Any, shape: tuple[int, ...], *, what: str) -> None:
    """Fail unless ``value`` is numeric data of exactly ``shape``."""
    found = _tuple(as_numpy(value, what=what).shape)
    expected = _tuple(shape)
    if found != expected:
        hint = ""
        if sorted(found) == sorted(expected) and found != expected:
            hint = " The same sizes in another order: check for a missing or extra transpose."
        elif len(found) != len(expected):
            hint = " A different number of dimensions: check for a missing reshape, squeeze or unsqueeze."
        raise AssertionError(f"{what} should have shape {expected}, but has shape {found}.{hint}")


def check_dtype(value: Any, dtype: Any, *, what: str) -> None:
    """Fail unless ``value`` (a tensor or array) has the given dtype."""
    found = value.dtype if _is_tensor(value) or _isinstance(value, _ndarray) else type(value)
    if found != dtype:
        raise AssertionError(f"{what} should have dtype {dtype}, but has dtype {found}.")


def check_true(condition: Any, message: str) -> None:
    """Fail with ``message`` unless ``condition`` is the boolean ``True``.

    Unlike a bare ``assert``, an object that merely claims to be truthy is not
    enough: the condition must be a real ``bool`` (or a NumPy/torch boolean).
    """
    if _is_tensor(condition):
        condition = bool(condition.detach().cpu().numpy().all())
    elif _isinstance(condition, (_ndarray, _bool_)):
        condition = bool(_all(condition))
    if condition is not True:
        raise AssertionError(message)


def _close(got: np.ndarray, expected: np.ndarray, atol: float, rtol: float) -> bool:
    if got.shape != expected.shape:
        return False
    got_finite = _isfinite(got)
    expected_finite = _isfinite(expected)
    if not bool(_all(got_finite == expected_finite)):
        return False
    if not bool(_all(got[~got_finite] == expected[~expected_finite])):
        return False
    difference = _abs(got[got_finite].astype(_float) - expected[expected_finite])
    tolerance = atol + rtol * _abs(expected[expected_finite])
    return bool(_all(difference <= tolerance))


def _reference(value: Any) -> np.ndarray:
    """A result computed by the test itself (any array-like) as a float array."""
    return _asarray(value.detach().cpu().numpy() if _is_tensor(value) else value, dtype=_float)


def _eps(dtype: Any) -> float:
    """Machine epsilon of a floating dtype; float64's for integers and booleans."""
    return _float(_finfo(dtype).eps) if dtype.kind == "f" else _float(_finfo(np.float64).eps)


def default_tolerance(got: np.ndarray, expected: Any) -> tuple[float, float]:
    """Tolerances that follow the dtypes of ``got`` and ``expected`` and the magnitude of ``expected``.

    A result computed in another (correct) order differs from the reference by rounding errors that
    grow with the size of the values and the length of the sums behind them. ``rtol`` is the square
    root of the machine epsilon of the coarser of the two dtypes (half its digits: 3.5e-4 for float32,
    1.5e-8 for float64 and for integers), and ``atol`` the same fraction of the largest finite expected
    value, so that entries near 0 in a vector of large values are judged on the vector's scale:
    float32 results around 40 get ``atol`` about 1.4e-2, float64 results around 1 about 1.5e-8. Real
    mistakes (a wrong axis, a missing scale, an inverted mask) change results far more than that.
    """
    expected_array = _reference(expected)
    expected_dtype = _asarray(expected.detach().cpu().numpy() if _is_tensor(expected) else expected).dtype
    eps = max(_eps(got.dtype), _eps(expected_dtype))
    finite = expected_array[_isfinite(expected_array)]
    scale = _float(_max(_abs(finite))) if finite.size else 0.0
    rtol = _float(_sqrt(eps))
    return rtol * max(scale, 1e-3), rtol


def check_close(
    got: Any,
    expected: Any,
    *,
    what: str,
    atol: float | None = None,
    rtol: float | None = None,
    mistakes: Mapping[str, Any] | None = None,
) -> None:
    """Fail unless ``got`` equals ``expected`` to tolerance, with a hint if not.

    Args:
        got: the student's result (array, tensor or number).
        expected: the right result.
        what: how to name the result in a message, e.g. ``"softmax(x)"``.
        atol, rtol: tolerances, as in ``numpy.isclose``. Left out (``None``), both follow the dtype of
            ``got`` and the magnitude of ``expected`` (:func:`default_tolerance`).
        mistakes: ``{hint: wrong_result}``; if ``got`` matches a wrong result,
            the message is that hint.
    """
    got_array = as_numpy(got, what=what)
    expected_array = _reference(expected)
    check_shape(got_array, expected_array.shape, what=what)
    if atol is None or rtol is None:
        auto_atol, auto_rtol = default_tolerance(got_array, expected)
        atol = auto_atol if atol is None else atol
        rtol = auto_rtol if rtol is None else rtol
    if _close(got_array, expected_array, atol, rtol):
        return
    for hint, wrong in (mistakes or {}).items():
        wrong_array = _reference(wrong)
        if _close(got_array, wrong_array, atol, rtol):
            raise AssertionError(f"{what} is not right. Likely cause: {hint}")
    if not bool(_all(_isfinite(got_array))) and bool(_all(_isfinite(expected_array))):
        raise AssertionError(
            f"{what} contains NaN or infinity where finite values were expected. "
            "Likely cause: an overflow (e.g. `exp` of a large number), `inf - inf`, or `0 / 0`."
        )
    with _errstate(invalid="ignore"):
        gap = _abs(got_array.astype(_float) - expected_array)
    gap = _where(_isnan(gap), float("inf"), gap)
    where = _unravel_index(_argmax(gap), gap.shape) if gap.ndim else ()
    raise AssertionError(
        f"{what} is not right: at index {_tuple(int(i) for i in where)} expected "
        f"{expected_array[where]:.6g} but found {got_array.astype(_float)[where]:.6g} "
        f"(largest difference {_float(_max(gap)):.3g}, tolerance atol={atol:.3g}, rtol={rtol:.3g})."
    )


def check_raises(
    call: Callable[[], Any],
    error: type[BaseException] | tuple[type[BaseException], ...],
    *,
    what: str,
    hint: str = "",
) -> BaseException:
    """Fail unless ``call()`` raises ``error``; return the exception raised (to inspect its message).

    Args:
        call: a function of no arguments, e.g. ``lambda: f(bad_input)``.
        error: the exception type (or types) the statement asks for.
        what: how to name the call in a message, e.g. ``"attend(q, k, v, mask=float_mask)"``.
        hint: the likely cause when nothing (or something else) is raised.
    """
    try:
        call()
    except error as raised:  # noqa: B030 - ``error`` is a type or a tuple of types
        return raised
    except NotImplementedError:
        raise  # an unanswered task is reported as such, not as the wrong exception
    except Exception as other:  # noqa: BLE001 - reported to the student
        raise AssertionError(f"{what} should raise {_error_name(error)}, but raised "
                             f"{type(other).__name__}: {str(other)[:200]}. {hint}".rstrip()) from None
    raise AssertionError(f"{what} should raise {_error_name(error)}, but returned normally. {hint}".rstrip())


def _error_name(error: type[BaseException] | tuple[type[BaseException], ...]) -> str:
    types = error if _isinstance(error, _tuple) else (error,)
    return " or ".join(t.__name__ for t in types)
