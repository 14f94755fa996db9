"""ex01 (NumPy): another correct solution and plausible mistakes. Used by tests/test_other_solutions.py."""

from other_solutions._edit import edit

SOFTMAX = '''
def softmax(x, axis=-1, mask=None):
    """Move `axis` last, fill blocked entries with a huge negative number, zero the empty slices."""
    values = np.moveaxis(np.array(x, dtype=float), axis, -1)
    allowed = values > -np.inf
    if mask is not None:
        allowed = allowed & np.moveaxis(np.asarray(mask, dtype=bool), axis, -1)
    filled = np.where(allowed, values, -1e300)
    exps = np.exp(filled - filled.max(axis=-1, keepdims=True)) * allowed
    total = exps.sum(axis=-1, keepdims=True)
    weights = exps / np.where(total == 0.0, 1.0, total)
    return np.moveaxis(weights, -1, axis)
'''

LOG_SOFTMAX = '''
def log_softmax(x, axis=-1, mask=None):
    """NumPy's pairwise-stable logaddexp, reduced along the axis, gives the log-sum-exp."""
    scores = np.array(x, dtype=float)
    if mask is not None:
        scores[~np.asarray(mask, dtype=bool)] = -np.inf     # a copy: np.array copies by default
    with np.errstate(invalid="ignore"):
        log_sum = np.logaddexp.reduce(scores, axis=axis, keepdims=True)
        result = scores - log_sum
    return np.where(np.isneginf(log_sum), -np.inf, result)
'''

NADARAYA_WATSON = '''
def nadaraya_watson(x_query, x_train, y_train, bandwidth, kernel="gaussian"):
    """Both kernels as log-kernel scores, -inf outside the support, through Task 1's masked softmax."""
    u = np.subtract.outer(np.asarray(x_query, dtype=float), np.asarray(x_train, dtype=float)) / bandwidth
    if kernel == "gaussian":
        weights = softmax(-0.5 * u * u, axis=-1)
    else:
        inside = np.abs(u) < 1
        with np.errstate(divide="ignore"):
            log_kernel = np.log(np.where(inside, 1 - u * u, 1.0))
        weights = softmax(log_kernel, axis=-1, mask=inside)
    return np.einsum("mn,n->m", weights, np.asarray(y_train, dtype=float)), weights
'''

LOO_ERRORS = '''
def loo_errors(x_train, y_train, bandwidths, kernel="gaussian"):
    """Literally leave each point out and call Task 3 on the others."""
    x, y = np.asarray(x_train, dtype=float), np.asarray(y_train, dtype=float)
    result = np.zeros(len(bandwidths))
    for b, h in enumerate(bandwidths):
        for i in range(len(x)):
            prediction, _ = nadaraya_watson(x[i:i + 1], np.delete(x, i), np.delete(y, i), h, kernel)
            result[b] += (prediction[0] - y[i]) ** 2 / len(x)
    return result
'''

JACOBIAN = '''
def attention_pool_jacobian(query, keys, values):
    """J = V^T (diag(alpha) - alpha alpha^T) K, one matrix at a time."""
    keys, values = np.asarray(keys, dtype=float), np.asarray(values, dtype=float)
    alpha = softmax(keys @ np.asarray(query, dtype=float))
    d_alpha_d_scores = np.diag(alpha) - np.outer(alpha, alpha)        # (n, n)
    return values.T @ d_alpha_d_scores @ keys
'''

PREDICTIONS = '''
scores = np.array([2.0, 1.0, 0.0, 2.0])
duplicate_weight = softmax(scores)[[0, 3]].sum()
half_temperature = 2 / np.log(2)
flipped_scores = -3 * np.array([1.5, -0.5, 0.2, -2.0])
flipped_top_key = int(np.argmax(flipped_scores))
flipped_top_weight = float(softmax(flipped_scores).max())
limit_prediction = nadaraya_watson(np.array([2.0]), np.array([0.0, 1.0, 3.0]), np.array([0.0, 2.0, 10.0]),
                                   1e-3)[0][0]
'''

CORRECT = {
    "softmax_answer": SOFTMAX,
    "log_softmax_answer": LOG_SOFTMAX,
    "nadaraya_watson_answer": NADARAYA_WATSON,
    "loo_errors_answer": LOO_ERRORS,
    "attention_pool_jacobian_answer": JACOBIAN,
    "predictions_answer": PREDICTIONS,
}

SOFTMAX_WITHOUT_SHIFT = '''
def softmax(x, axis=-1, mask=None):
    x = np.asarray(x, dtype=float)
    if mask is not None:
        x = np.where(mask, x, -np.inf)
    e = np.exp(x)                                     # no maximum subtracted: exp(1000) overflows
    total = e.sum(axis=axis, keepdims=True)
    return np.divide(e, total, out=np.zeros_like(e), where=total > 0)
'''

SOFTMAX_IGNORES_AXIS = edit(
    edit(edit(SOFTMAX, "np.moveaxis(np.array(x, dtype=float), axis, -1)", "np.array(x, dtype=float)"),
         "np.moveaxis(np.asarray(mask, dtype=bool), axis, -1)", "np.asarray(mask, dtype=bool)"),
    "return np.moveaxis(weights, -1, axis)", "return weights")

SOFTMAX_NAN_WHEN_NOTHING_TO_ATTEND = '''
def softmax(x, axis=-1, mask=None):
    x = np.asarray(x, dtype=float)
    if mask is not None:
        x = np.where(mask, x, -np.inf)
    e = np.exp(x - x.max(axis=axis, keepdims=True))   # -inf - (-inf) is NaN on an empty slice
    return e / e.sum(axis=axis, keepdims=True)
'''

SOFTMAX_MASK_INVERTED = edit(SOFTMAX, "allowed & np.moveaxis(np.asarray(mask, dtype=bool), axis, -1)",
                             "allowed & ~np.moveaxis(np.asarray(mask, dtype=bool), axis, -1)")

SOFTMAX_MODIFIES_INPUT = '''
def softmax(x, axis=-1, mask=None):
    if mask is not None:
        x[~mask] = -np.inf                            # writes into the caller's array
    shift = np.max(x, axis=axis, keepdims=True)
    shift = np.where(np.isfinite(shift), shift, 0.0)
    e = np.exp(x - shift)
    total = e.sum(axis=axis, keepdims=True)
    return np.divide(e, total, out=np.zeros_like(e), where=total > 0)
'''

LOG_OF_SOFTMAX = '''
def log_softmax(x, axis=-1, mask=None):
    with np.errstate(divide="ignore"):
        return np.log(softmax(x, axis=axis, mask=mask))   # a weight that underflowed to 0 gives -inf
'''

LOG_SOFTMAX_WITHOUT_SHIFT = '''
def log_softmax(x, axis=-1, mask=None):
    x = np.asarray(x, dtype=float)
    if mask is not None:
        x = np.where(mask, x, -np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_total = np.log(np.exp(x).sum(axis=axis, keepdims=True))   # exp(1000) overflows
        return np.where(np.isneginf(log_total), -np.inf, x - log_total)
'''

NW_GAUSSIAN_RAW_KERNEL = edit(NADARAYA_WATSON, "weights = softmax(-0.5 * u * u, axis=-1)",
                              "k = np.exp(-0.5 * u * u)\n        weights = k / k.sum(axis=-1, keepdims=True)")

NW_SOFTMAX_OF_KERNEL = '''
def nadaraya_watson(x_query, x_train, y_train, bandwidth, kernel="gaussian"):
    u = (np.asarray(x_query, dtype=float)[:, None] - np.asarray(x_train, dtype=float)[None, :]) / bandwidth
    if kernel == "gaussian":
        weights = softmax(-u**2 / 2, axis=1)
    else:
        k = np.where(np.abs(u) < 1, 0.75 * (1 - u**2), 0.0)
        weights = softmax(k, axis=1)                  # normalises exp(K) instead of K
    return weights @ np.asarray(y_train, dtype=float), weights
'''

NW_NAN_WITHOUT_NEIGHBOURS = '''
def nadaraya_watson(x_query, x_train, y_train, bandwidth, kernel="gaussian"):
    u = (np.asarray(x_query, dtype=float)[:, None] - np.asarray(x_train, dtype=float)[None, :]) / bandwidth
    if kernel == "gaussian":
        weights = softmax(-u**2 / 2, axis=1)
    else:
        k = np.where(np.abs(u) < 1, 0.75 * (1 - u**2), 0.0)
        weights = k / k.sum(axis=1, keepdims=True)    # 0 / 0 for a query with nothing to attend to
    return weights @ np.asarray(y_train, dtype=float), weights
'''

LOO_POINT_SEES_ITSELF = edit(LOO_ERRORS, "np.delete(x, i), np.delete(y, i), h, kernel)", "x, y, h, kernel)")

LOO_SKIPS_ISOLATED_POINTS = '''
def loo_errors(x_train, y_train, bandwidths, kernel="gaussian"):
    x, y = np.asarray(x_train, dtype=float), np.asarray(y_train, dtype=float)
    result = []
    for h in bandwidths:
        squared = []
        for i in range(len(x)):
            prediction, weights = nadaraya_watson(x[i:i + 1], np.delete(x, i), np.delete(y, i), h, kernel)
            if weights.sum() > 0:                     # leaves out points with no other point within h
                squared.append((prediction[0] - y[i]) ** 2)
        result.append(np.mean(squared) if squared else 0.0)
    return np.array(result)
'''

JACOBIAN_WITHOUT_CENTRING = '''
def attention_pool_jacobian(query, keys, values):
    keys, values = np.asarray(keys, dtype=float), np.asarray(values, dtype=float)
    alpha = softmax(keys @ np.asarray(query, dtype=float))
    return (values * alpha[:, None]).T @ keys         # misses the -alpha alpha^T part
'''

JACOBIAN_NAIVE_SOFTMAX = edit(JACOBIAN, "alpha = softmax(keys @ np.asarray(query, dtype=float))",
                              "e = np.exp(keys @ np.asarray(query, dtype=float))\n    alpha = e / e.sum()")

JACOBIAN_BY_AUTOGRAD = '''
import torch

def attention_pool_jacobian(query, keys, values):
    """Correct, but PyTorch does the work: the exercise is NumPy only."""
    k, v = torch.as_tensor(keys, dtype=torch.float64), torch.as_tensor(values, dtype=torch.float64)
    context = lambda q: torch.softmax(k @ q, dim=0) @ v
    return torch.autograd.functional.jacobian(context, torch.as_tensor(query, dtype=torch.float64)).numpy()
'''

PREDICTIONS_ONE_COPY = edit(PREDICTIONS, "softmax(scores)[[0, 3]].sum()", "softmax(scores)[0]")

WRONG = {
    "softmax_without_max_shift": (
        {"softmax_answer": SOFTMAX_WITHOUT_SHIFT}, ["test_softmax_values"]),
    "softmax_ignores_axis": (
        {"softmax_answer": SOFTMAX_IGNORES_AXIS}, ["test_softmax_values"]),
    "softmax_nan_on_a_slice_with_nothing_to_attend_to": (
        {"softmax_answer": SOFTMAX_NAN_WHEN_NOTHING_TO_ATTEND}, ["test_softmax_mask"]),
    "softmax_mask_inverted": (
        {"softmax_answer": SOFTMAX_MASK_INVERTED}, ["test_softmax_mask"]),
    "softmax_modifies_its_input": (
        {"softmax_answer": SOFTMAX_MODIFIES_INPUT}, ["test_softmax_mask"]),
    "log_softmax_as_log_of_softmax": (
        {"log_softmax_answer": LOG_OF_SOFTMAX}, ["test_log_softmax_underflow"]),
    "log_softmax_without_max_shift": (
        {"log_softmax_answer": LOG_SOFTMAX_WITHOUT_SHIFT}, ["test_log_softmax_values"]),
    "nadaraya_watson_gaussian_without_stable_softmax": (
        {"nadaraya_watson_answer": NW_GAUSSIAN_RAW_KERNEL}, ["test_nadaraya_watson_gaussian"]),
    "nadaraya_watson_softmax_of_the_kernel": (
        {"nadaraya_watson_answer": NW_SOFTMAX_OF_KERNEL},
        ["test_nadaraya_watson_epanechnikov", "test_nadaraya_watson_no_neighbour"]),
    "nadaraya_watson_nan_without_neighbours": (
        {"nadaraya_watson_answer": NW_NAN_WITHOUT_NEIGHBOURS}, ["test_nadaraya_watson_no_neighbour"]),
    "loo_errors_point_sees_itself": (
        {"loo_errors_answer": LOO_POINT_SEES_ITSELF},
        ["test_loo_errors_gaussian", "test_loo_errors_epanechnikov"]),
    "loo_errors_skips_isolated_points": (
        {"loo_errors_answer": LOO_SKIPS_ISOLATED_POINTS}, ["test_loo_errors_epanechnikov"]),
    "jacobian_without_centring": (
        {"attention_pool_jacobian_answer": JACOBIAN_WITHOUT_CENTRING},
        ["test_jacobian_values", "test_jacobian_large_scores", "test_jacobian_single_key"]),
    "jacobian_overflows_on_large_scores": (
        {"attention_pool_jacobian_answer": JACOBIAN_NAIVE_SOFTMAX}, ["test_jacobian_large_scores"]),
    "jacobian_by_torch_autograd": (
        {"attention_pool_jacobian_answer": JACOBIAN_BY_AUTOGRAD}, ["test_jacobian_values"]),
    "prediction_weight_of_one_copy": (
        {"predictions_answer": PREDICTIONS_ONE_COPY}, ["test_prediction_duplicate"]),
}
