"""ex01 (NumPy): another correct solution and plausible mistakes. Used by tests/test_other_solutions.py."""

SOFTMAX = '''
def softmax(x, axis=-1):
    """Softmax along `axis`: move that axis last, shift by a finite maximum, mask empty slices."""
    values = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1)
    top = values.max(axis=-1, keepdims=True)
    top = np.where(np.isneginf(top), 0.0, top)            # an all -inf slice: shift by 0 instead
    exps = np.exp(values - top)
    total = exps.sum(axis=-1, keepdims=True)
    safe_total = np.where(total == 0.0, 1.0, total)
    weights = np.where(total == 0.0, 0.0, exps / safe_total)
    return np.moveaxis(weights, -1, axis)
'''

DOT_SCORES = '''
def dot_scores(query, keys):
    """Multiply every key by the query feature by feature, then sum over the features."""
    return (np.asarray(keys) * np.asarray(query)[None, :]).sum(axis=1)
'''

ATTENTION_POOL = '''
def attention_pool(query, keys, values):
    """Weights from the scores, then the context as an explicit weighted sum over the n positions."""
    weights = softmax(dot_scores(query, keys), axis=0)
    context = np.sum(weights[:, None] * np.asarray(values), axis=0)
    return context, weights
'''

NADARAYA_WATSON = '''
def nadaraya_watson(x_query, x_train, y_train, bandwidth=1.0):
    """Gaussian-kernel regression: a softmax over the training points of -(distance^2) / (2 h^2)."""
    distances = np.subtract.outer(np.asarray(x_query, dtype=float), np.asarray(x_train, dtype=float))
    scores = -0.5 * (distances / bandwidth) ** 2                  # (m, n)
    weights = softmax(scores, axis=-1)
    return np.einsum("mn,n->m", weights, np.asarray(y_train, dtype=float))
'''

CORRECT = {
    "softmax_answer": SOFTMAX,
    "dot_scores_answer": DOT_SCORES,
    "attention_pool_answer": ATTENTION_POOL,
    "nadaraya_watson_answer": NADARAYA_WATSON,
}

SOFTMAX_WITHOUT_SHIFT = '''
def softmax(x, axis=-1):
    e = np.exp(np.asarray(x, dtype=float))            # no maximum subtracted: exp(1000) overflows
    return e / e.sum(axis=axis, keepdims=True)
'''

SOFTMAX_IGNORES_AXIS = '''
def softmax(x, axis=-1):
    x = np.asarray(x, dtype=float)
    top = x.max(axis=-1, keepdims=True)               # always the last axis, whatever `axis` says
    top = np.where(np.isfinite(top), top, 0.0)
    e = np.exp(x - top)
    total = e.sum(axis=-1, keepdims=True)
    return np.divide(e, total, out=np.zeros_like(e), where=total > 0)
'''

SOFTMAX_NAN_WHEN_ALL_MASKED = '''
def softmax(x, axis=-1):
    x = np.asarray(x, dtype=float)
    e = np.exp(x - x.max(axis=axis, keepdims=True))   # -inf - (-inf) is NaN on a fully masked slice
    return e / e.sum(axis=axis, keepdims=True)
'''

DOT_SCORES_SCALED = '''
def dot_scores(query, keys):
    keys = np.asarray(keys)
    return keys @ np.asarray(query) / np.sqrt(keys.shape[-1])   # scaled as in chapter 3, not asked here
'''

NADARAYA_WATSON_RAW_KERNEL = '''
def nadaraya_watson(x_query, x_train, y_train, bandwidth=1.0):
    d = np.asarray(x_query, dtype=float)[:, None] - np.asarray(x_train, dtype=float)[None, :]
    kernel = np.exp(-d ** 2 / (2 * bandwidth ** 2))          # underflows to 0 far from the data
    return kernel @ np.asarray(y_train, dtype=float) / kernel.sum(axis=1)
'''

WRONG = {
    "softmax_without_max_shift": (
        {"softmax_answer": SOFTMAX_WITHOUT_SHIFT},
        ["test_softmax_values", "test_softmax_axis", "test_softmax_masked", "test_attention_pool",
         "test_nadaraya_watson_edge_cases"]),
    "softmax_ignores_axis": (
        {"softmax_answer": SOFTMAX_IGNORES_AXIS},
        ["test_softmax_axis", "test_softmax_masked"]),
    "softmax_nan_on_fully_masked_slice": (
        {"softmax_answer": SOFTMAX_NAN_WHEN_ALL_MASKED},
        ["test_softmax_masked"]),
    "dot_scores_divided_by_sqrt_d": (
        {"dot_scores_answer": DOT_SCORES_SCALED},
        ["test_dot_scores", "test_attention_pool"]),
    "nadaraya_watson_kernel_without_stable_softmax": (
        {"nadaraya_watson_answer": NADARAYA_WATSON_RAW_KERNEL},
        ["test_nadaraya_watson_edge_cases"]),
}
