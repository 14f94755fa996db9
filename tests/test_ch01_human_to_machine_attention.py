"""Check chapter 1's from-scratch implementations against PyTorch and direct formulas.

The chapter is NumPy only; PyTorch serves here as the independent reference.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from book_loader import load_chapter

ch = load_chapter("ch01_human_to_machine_attention")

SHAPES = [(1,), (7,), (1, 1), (3, 5), (5, 1), (2, 3, 4), (4, 1, 6), (2, 3, 1, 5)]
# Raise on overflow, 0/0 and division by zero inside the implementations (underflow is fine).
STRICT = {"over": "raise", "invalid": "raise", "divide": "raise"}


def torch_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    return torch.softmax(torch.from_numpy(np.asarray(x)), dim=axis).numpy()


def direct_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    """Log-sum-exp form, written independently of the chapter."""
    m = np.max(x, axis=axis, keepdims=True)
    return np.exp(x - m - np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)))


# ----------------------------------------------------------------------------- softmax
@pytest.mark.parametrize("shape", SHAPES)
def test_softmax_matches_torch_along_every_axis(shape):
    rng = np.random.default_rng(sum(shape))
    x = rng.normal(scale=3.0, size=shape)
    for axis in range(-len(shape), len(shape)):
        with np.errstate(**STRICT):
            got = ch.softmax(x, axis=axis)
        assert got.shape == x.shape
        np.testing.assert_allclose(got, torch_softmax(x, axis), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(got, direct_softmax(x, axis), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(got.sum(axis=axis), 1.0, rtol=1e-12)


def test_softmax_default_axis_is_last():
    x = np.random.default_rng(0).normal(size=(3, 4, 5))
    np.testing.assert_allclose(ch.softmax(x), torch_softmax(x, -1), rtol=1e-12)


@pytest.mark.parametrize("offset", [0.0, 700.0, 1e4, -1e4, 1e300])
def test_softmax_large_logits_are_finite_and_exact(offset):
    rng = np.random.default_rng(1)
    x = rng.normal(scale=50.0, size=(4, 6)) + offset
    if offset == 1e300:  # differences below float64 resolution: every entry equal
        x = np.full((4, 6), offset)
    with np.errstate(**STRICT):
        got = ch.softmax(x, axis=1)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, torch_softmax(x, 1), rtol=1e-10, atol=1e-300)


def test_softmax_worked_example_weights():
    scores = np.array([927.0, 397.0, 148.0, 929.0])
    got = ch.softmax(scores)
    expected = np.array([1 / (1 + np.exp(2.0)), 0.0, 0.0, np.exp(2.0) / (1 + np.exp(2.0))])
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-200)


def test_softmax_minus_inf_entries_get_zero_weight():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(6, 5))
    mask = rng.random((6, 5)) < 0.4
    mask[:, 0] = False  # every row keeps at least one finite entry
    x[mask] = -np.inf
    with np.errstate(**STRICT):
        got = ch.softmax(x, axis=-1)
    np.testing.assert_allclose(got, torch_softmax(x, -1), rtol=1e-12, atol=0)
    assert np.all(got[mask] == 0.0)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_softmax_all_minus_inf_slice_gives_zeros_not_nan(axis):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 4, 5))
    index = [slice(None)] * 3
    other = [a for a in range(3) if a != axis]
    index[other[0]] = 1
    index[other[1]] = 2
    x[tuple(index)] = -np.inf  # one whole slice along `axis` is masked
    with np.errstate(**STRICT):
        got = ch.softmax(x, axis=axis)
    assert not np.any(np.isnan(got))
    np.testing.assert_array_equal(got[tuple(index)], 0.0)
    reference = torch_softmax(x, axis)  # NaN on the masked slice, the convention differs there
    finite = ~np.isnan(reference)
    np.testing.assert_allclose(got[finite], reference[finite], rtol=1e-12, atol=0)


def test_softmax_dtypes_and_inputs():
    x32 = np.random.default_rng(4).normal(size=(3, 7)).astype(np.float32) * 100
    got32 = ch.softmax(x32)
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32, torch_softmax(x32, -1), rtol=1e-5, atol=1e-7)
    got_int = ch.softmax(np.array([1, 2, 3]))
    assert got_int.dtype == np.float64
    np.testing.assert_allclose(got_int, torch_softmax(np.array([1.0, 2.0, 3.0]), -1), rtol=1e-12)
    np.testing.assert_allclose(ch.softmax([0.0, 0.0]), [0.5, 0.5])


# -------------------------------------------------------------------------- dot_scores
@pytest.mark.parametrize(("n", "d"), [(1, 1), (1, 5), (4, 1), (4, 3), (3, 4), (6, 6), (17, 9)])
def test_dot_scores_matches_direct_sum_and_torch(n, d):
    rng = np.random.default_rng(10 * n + d)
    query, keys = rng.normal(size=d), rng.normal(size=(n, d))
    got = ch.dot_scores(query, keys)
    assert got.shape == (n,)
    loop = np.array([sum(query[i] * keys[j, i] for i in range(d)) for j in range(n)])
    np.testing.assert_allclose(got, loop, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(
        got, torch.mv(torch.from_numpy(keys), torch.from_numpy(query)).numpy(), rtol=1e-12, atol=1e-12
    )


def test_dot_scores_worked_example():
    got = ch.dot_scores([5, 1, 20], [[3, 12, 45], [59, 2, 5], [1, 43, 5], [4, 3, 45.3]])
    np.testing.assert_allclose(got, [927.0, 397.0, 148.0, 929.0])


# ---------------------------------------------------------------------- attention_pool
@pytest.mark.parametrize(
    ("n", "d", "d_v", "scale"),
    [(1, 3, 2, 1.0), (5, 4, 3, 1.0), (8, 2, 6, 30.0), (4, 4, 4, 1.0), (12, 7, 1, 5.0)],
)
def test_attention_pool_matches_torch(n, d, d_v, scale):
    rng = np.random.default_rng(n * 100 + d * 10 + d_v)
    query = rng.normal(size=d) * scale
    keys = rng.normal(size=(n, d)) * scale
    values = rng.normal(size=(n, d_v))
    with np.errstate(**STRICT):
        context, weights = ch.attention_pool(query, keys, values)
    assert context.shape == (d_v,) and weights.shape == (n,)
    q, k, v = (torch.from_numpy(a) for a in (query, keys, values))
    ref_weights = torch.softmax(k @ q, dim=0)
    np.testing.assert_allclose(weights, ref_weights.numpy(), rtol=1e-10, atol=1e-300)
    ref_context = F.scaled_dot_product_attention(q[None, None, :], k[None], v[None], scale=1.0)[0, 0]
    np.testing.assert_allclose(context, ref_context.numpy(), rtol=1e-9, atol=1e-12)


def test_attention_pool_single_key_returns_its_value():
    context, weights = ch.attention_pool(
        np.array([1e3, -2e3]), np.array([[5.0, 1.0]]), np.array([[7.0, 8.0, 9.0]])
    )
    np.testing.assert_allclose(weights, [1.0])
    np.testing.assert_allclose(context, [7.0, 8.0, 9.0])


def test_attention_pool_worked_example():
    states = np.array([[3, 12, 45], [59, 2, 5], [1, 43, 5], [4, 3, 45.3]])
    context, weights = ch.attention_pool(np.array([5.0, 1.0, 20.0]), states, states)
    w_first = 1 / (1 + np.exp(2.0))
    np.testing.assert_allclose(weights, [w_first, 0.0, 0.0, 1 - w_first], rtol=1e-12, atol=1e-200)
    np.testing.assert_allclose(context, w_first * states[0] + (1 - w_first) * states[3], rtol=1e-12)


@pytest.mark.parametrize(("m", "n", "d", "d_v"), [(1, 1, 1, 1), (3, 5, 4, 2), (6, 6, 8, 8), (2, 9, 3, 5)])
def test_attend_matches_torch_sdpa(m, n, d, d_v):
    rng = np.random.default_rng(m + n + d + d_v)
    queries, keys, values = (
        rng.normal(size=(m, d)) * 4,
        rng.normal(size=(n, d)) * 4,
        rng.normal(size=(n, d_v)),
    )
    contexts, weights = ch.attend(queries, keys, values)
    q, k, v = (torch.from_numpy(a)[None] for a in (queries, keys, values))
    ref = F.scaled_dot_product_attention(q, k, v, scale=1.0)[0].numpy()
    np.testing.assert_allclose(contexts, ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(weights, torch.softmax(q[0] @ k[0].T, dim=-1).numpy(), rtol=1e-10, atol=1e-300)
    for i in range(m):  # one query at a time gives the same rows
        context_i, weights_i = ch.attention_pool(queries[i], keys, values)
        np.testing.assert_allclose(contexts[i], context_i, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(weights[i], weights_i, rtol=1e-12, atol=1e-300)


# --------------------------------------------------------------------- Nadaraya-Watson
def kernel_ratio(x_query, x_train, y_train, bandwidth):
    """The textbook estimator: sum_j K((x - x_j)/h) y_j / sum_l K((x - x_l)/h), K(u) = exp(-u^2/2)."""
    u = (np.asarray(x_query)[:, None] - np.asarray(x_train)[None, :]) / bandwidth
    kernel = np.exp(-(u**2) / 2)
    return (kernel @ np.asarray(y_train)) / kernel.sum(axis=1)


@pytest.mark.parametrize(
    ("m", "n", "bandwidth"),
    [(1, 1, 1.0), (7, 1, 0.3), (1, 9, 0.5), (20, 30, 0.25), (13, 8, 2.0), (5, 40, 10.0)],
)
def test_nadaraya_watson_matches_kernel_ratio(m, n, bandwidth):
    rng = np.random.default_rng(m * n)
    x_train = rng.uniform(0, 3, size=n)
    y_train = rng.normal(size=n)
    x_query = rng.uniform(0, 3, size=m)
    got = ch.nadaraya_watson(x_query, x_train, y_train, bandwidth=bandwidth)
    assert got.shape == (m,)
    np.testing.assert_allclose(
        got, kernel_ratio(x_query, x_train, y_train, bandwidth), rtol=1e-10, atol=1e-12
    )
    scores = -((torch.from_numpy(x_query)[:, None] - torch.from_numpy(x_train)[None, :]) ** 2) / (
        2 * bandwidth**2
    )
    ref = (torch.softmax(scores, dim=1) @ torch.from_numpy(y_train)).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)


def test_nadaraya_watson_weights_shape_and_rows():
    rng = np.random.default_rng(5)
    weights = ch.nadaraya_watson_weights(rng.uniform(size=4), rng.uniform(size=6), bandwidth=0.2)
    assert weights.shape == (4, 6)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-12)
    assert np.all(weights > 0)


def test_nadaraya_watson_default_bandwidth_is_one():
    rng = np.random.default_rng(6)
    x_train, y_train, x_query = rng.normal(size=10), rng.normal(size=10), rng.normal(size=4)
    np.testing.assert_allclose(
        ch.nadaraya_watson(x_query, x_train, y_train),
        kernel_ratio(x_query, x_train, y_train, 1.0),
        rtol=1e-12,
    )


def test_nadaraya_watson_limits():
    rng = np.random.default_rng(7)
    x_train = np.sort(rng.uniform(0, 6, size=25))
    y_train = rng.normal(size=25)
    far = np.array([-50.0, 3.0, 80.0])
    with np.errstate(**STRICT):
        tiny = ch.nadaraya_watson(far, x_train, y_train, bandwidth=1e-3)
    nearest = np.abs(far[:, None] - x_train[None, :]).argmin(axis=1)
    np.testing.assert_allclose(tiny, y_train[nearest], rtol=1e-9)  # where the kernel ratio is 0/0
    huge = ch.nadaraya_watson(far[1:2], x_train, y_train, bandwidth=1e6)
    np.testing.assert_allclose(huge, [y_train.mean()], rtol=1e-6)
    const = ch.nadaraya_watson(rng.uniform(0, 6, 9), x_train, np.full(25, 2.5), bandwidth=0.4)
    np.testing.assert_allclose(const, 2.5, rtol=1e-12)


# ------------------------------------------------------------------ learned bandwidth
def torch_bandwidth_loss(theta, x_query, y_query, x_keys, y_values):
    """The same loss written in PyTorch, so autograd gives an independent gradient."""
    theta = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
    xq, yq, xk, yv = (torch.as_tensor(a, dtype=torch.float64) for a in (x_query, y_query, x_keys, y_values))
    bandwidth = torch.exp(theta)
    weights = torch.softmax(-((xq[:, None] - xk[None, :]) ** 2) / (2 * bandwidth**2), dim=1)
    loss = torch.mean((weights @ yv - yq) ** 2)
    loss.backward()
    return loss.item(), theta.grad.item()


@pytest.mark.parametrize(
    ("m", "n", "h"), [(1, 1, 0.5), (1, 5, 0.2), (7, 1, 1.0), (30, 20, 0.3), (12, 40, 2.0), (9, 15, 0.01)]
)
def test_bandwidth_gradient_matches_autograd(m, n, h):
    rng = np.random.default_rng(m * 100 + n)
    x_keys, y_values = rng.uniform(0, 3, n), rng.normal(size=n)
    x_query, y_query = rng.uniform(0, 3, m), rng.normal(size=m)
    with np.errstate(**STRICT):
        loss, gradient = ch.bandwidth_loss_and_gradient(np.log(h), x_query, y_query, x_keys, y_values)
    ref_loss, ref_gradient = torch_bandwidth_loss(np.log(h), x_query, y_query, x_keys, y_values)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-12)
    np.testing.assert_allclose(gradient, ref_gradient, rtol=1e-9, atol=1e-14)


def test_bandwidth_gradient_vanishes_for_a_hard_attention():
    """A bandwidth far below the spacing of the keys makes every weight one-hot: no gradient."""
    x_keys = np.array([0.0, 1.0, 2.0, 3.0])
    y_values = np.array([1.0, -1.0, 2.0, 0.5])
    x_query = np.array([0.1, 1.2, 2.9])
    _, gradient = ch.bandwidth_loss_and_gradient(np.log(1e-3), x_query, np.zeros(3), x_keys, y_values)
    assert abs(gradient) < 1e-100
