"""ex03 (self-attention: positions and masks): another correct solution and plausible mistakes.

Used by tests/test_other_solutions.py. Each mistake changes one answer cell and must fail exactly
the test cells listed with it.
"""

from other_solutions._edit import edit

SDPA = '''
def scaled_dot_product_attention(q, k, v, mask=None):
    """einsum scores; a hand-written softmax with the smallest float of the dtype as the fill, masked
    exponentials set to 0, and a guarded division so that a query with no allowed key gets zeros."""
    scores = torch.einsum("...id,...jd->...ij", q, k) / q.size(-1) ** 0.5
    if mask is None:
        weights = scores.softmax(dim=-1)
    else:
        filled = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        top = filled.amax(dim=-1, keepdim=True).detach()      # the softmax does not depend on the shift
        exps = torch.exp(filled - top) * mask
        total = exps.sum(dim=-1, keepdim=True)
        weights = exps / torch.where(total > 0, total, torch.ones_like(total))
    return torch.einsum("...ij,...jd->...id", weights, v), weights
'''

ROTARY = '''
def apply_rotary(x, positions=None, base=10000.0):
    """Pairs as complex numbers: (x_2i + i x_2i+1) * exp(i p theta_i) is the rotation of the pair."""
    *lead, length, d = x.shape
    if d % 2 != 0:
        raise ValueError(f"odd number of features: {d}")
    real = torch.float64 if x.dtype == torch.float64 else torch.float32
    p = torch.arange(length, dtype=real) if positions is None else positions.to(real)
    theta = torch.exp(-math.log(base) * torch.arange(d // 2, dtype=real) * 2 / d)
    turn = torch.polar(torch.ones(length, d // 2, dtype=real), torch.outer(p, theta))   # (len, d/2)
    pairs = torch.view_as_complex(x.to(real).reshape(*lead, length, d // 2, 2).contiguous())
    return torch.view_as_real(pairs * turn).reshape(x.shape).to(x.dtype)
'''

PACKED = '''
def packed_mask(segment_ids, causal=False):
    """Same id, neither side padding; positions compared for the causal part."""
    valid = segment_ids.ge(0)
    mask = torch.eq(segment_ids[..., :, None], segment_ids[..., None, :])
    mask = mask & valid[..., :, None] & valid[..., None, :]
    if causal:
        positions = torch.arange(segment_ids.shape[-1])
        mask = mask & (positions[None, :] <= positions[:, None])
    return mask
'''

CACHE = '''
def cache_causal_mask(len_q, len_k):
    """The lower triangle shifted right by the number of cached positions."""
    if len_q > len_k:
        raise ValueError("len_q > len_k")
    return torch.ones(len_q, len_k, dtype=torch.bool).tril(diagonal=len_k - len_q)
'''

PREVIOUS = '''
def previous_token_projections(n_tokens, max_len):
    """The shift on the query side: the query at position i asks for slot i - 1, every key at position j
    answers in slot j. float64, with a generous gap between the previous key's score and the rest."""
    d = n_tokens + max_len
    W_Q = torch.zeros(d, max_len, dtype=torch.float64)
    W_K = torch.zeros(d, max_len, dtype=torch.float64)
    W_K[n_tokens:, :] = torch.eye(max_len, dtype=torch.float64)
    gap = 3 * math.log(10 * max_len)
    for i in range(1, max_len):
        W_Q[n_tokens + i, i - 1] = gap * math.sqrt(max_len)
    return W_Q, W_K
'''

CORRECT = {
    "scaled_dot_product_attention_answer": SDPA,
    "apply_rotary_answer": ROTARY,
    "packed_mask_answer": PACKED,
    "cache_causal_mask_answer": CACHE,
    "previous_token_projections_answer": PREVIOUS,
}

SDPA_PLAIN = '''
def scaled_dot_product_attention(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    if mask is not None:
        weights = torch.where(mask.any(dim=-1, keepdim=True), weights, 0.0)
    return weights @ v, weights
'''

# -inf and nothing else: a query with no allowed key gets NaN.
SDPA_NAN_ROWS = edit(SDPA_PLAIN, '''    if mask is not None:
        weights = torch.where(mask.any(dim=-1, keepdim=True), weights, 0.0)
''', "")
# -1e9 and nothing else: uniform weights on empty rows, and an error in float16 (issue 9's cascade).
SDPA_MINUS_1E9 = edit(SDPA_NAN_ROWS, 'float("-inf")', "-1e9")
# -1e9 with the zeroing: right in float32 and float64, an error in float16.
SDPA_MINUS_1E9_ZEROED = edit(SDPA_PLAIN, 'float("-inf")', "-1e9")
# Correct for (batch, len, d) only (issue 9's cascade): transpose(1, 2) instead of transpose(-2, -1).
SDPA_3D_ONLY = edit(SDPA_PLAIN, "k.transpose(-2, -1)", "k.transpose(1, 2)")

ROTARY_PLAIN = '''
def apply_rotary(x, positions=None, base=10000.0):
    length, d = x.shape[-2], x.shape[-1]
    if d % 2:
        raise ValueError("d must be even")
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    if positions is None:
        positions = torch.arange(length)
    theta = base ** (-torch.arange(0, d, 2, dtype=dtype) / d)
    angle = positions.to(dtype)[:, None] * theta[None, :]
    cos, sin = torch.cos(angle).to(x.dtype), torch.sin(angle).to(x.dtype)
    even, odd = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = even * cos - odd * sin
    out[..., 1::2] = even * sin + odd * cos
    return out
'''

# The "rotate half" convention: pairs (i, i + d/2). Scores still depend on the offset only.
ROTARY_HALVES = edit(ROTARY_PLAIN, '''    even, odd = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = even * cos - odd * sin
    out[..., 1::2] = even * sin + odd * cos
    return out''', '''    first, second = x[..., : d // 2], x[..., d // 2:]
    return torch.cat([first * cos - second * sin, first * sin + second * cos], dim=-1)''')
# Rotating by -angle: a rotation too, so only the formula catches it.
ROTARY_BACKWARDS = edit(ROTARY_PLAIN, "torch.sin(angle).to(x.dtype)", "(-torch.sin(angle)).to(x.dtype)")
# The positions argument is accepted and ignored.
ROTARY_IGNORES_POSITIONS = edit(ROTARY_PLAIN, "    if positions is None:\n        positions =",
                                "    if True:\n        positions =")
# Angles always in float32: float64 inputs get float32-accurate rotations.
ROTARY_FLOAT32_ANGLES = edit(ROTARY_PLAIN, "torch.float64 if x.dtype == torch.float64 else torch.float32",
                             "torch.float32")
# No check of d: an odd d fails later with a RuntimeError from the shapes, not a ValueError.
ROTARY_NO_ODD_CHECK = edit(ROTARY_PLAIN, '    if d % 2:\n        raise ValueError("d must be even")\n', "")

# Padding ids compared like any other id: padding attends to padding.
PACKED_PADDING_IS_A_DOCUMENT = '''
def packed_mask(segment_ids, causal=False):
    mask = segment_ids[..., :, None] == segment_ids[..., None, :]
    if causal:
        n = segment_ids.shape[-1]
        mask = mask & torch.ones(n, n, dtype=torch.bool).tril()
    return mask
'''
PACKED_CAUSAL_UPPER = edit(PACKED, "positions[None, :] <= positions[:, None]",
                           "positions[None, :] >= positions[:, None]")
# Indexes the batch dimension explicitly: a 1-D row fails.
PACKED_NEEDS_BATCH = edit(edit(edit(edit(PACKED, "segment_ids[..., :, None]", "segment_ids[:, :, None]"),
                                    "segment_ids[..., None, :]", "segment_ids[:, None, :]"),
                               "valid[..., :, None]", "valid[:, :, None]"),
                          "valid[..., None, :]", "valid[:, None, :]")

# Off by one: a new query does not see its own key.
CACHE_EXCLUDES_ITSELF = edit(CACHE, "diagonal=len_k - len_q", "diagonal=len_k - len_q - 1")
# No error for len_q > len_k.
CACHE_NO_ERROR = edit(CACHE, '    if len_q > len_k:\n        raise ValueError("len_q > len_k")\n', "")

# The right pattern, far too soft: the previous key's score is only 1 / sqrt(d_k) above the others.
PREVIOUS_TOO_SOFT = edit(PREVIOUS, "gap * math.sqrt(max_len)", "1.0")
# A gap of 5 is enough against 7 other keys (weight 0.95), not against 63 (weight 0.70).
PREVIOUS_GAP_FOR_SHORT = edit(PREVIOUS, "gap = 3 * math.log(10 * max_len)", "gap = 5.0")

WRONG = {
    "sdpa_nan_on_fully_masked_row": (
        {"scaled_dot_product_attention_answer": SDPA_NAN_ROWS}, ["test_sdpa_empty_rows"]),
    "sdpa_minus_1e9_without_zeroing": (
        {"scaled_dot_product_attention_answer": SDPA_MINUS_1E9},
        ["test_sdpa_empty_rows", "test_sdpa_dtypes"]),
    "sdpa_minus_1e9_overflows_float16": (
        {"scaled_dot_product_attention_answer": SDPA_MINUS_1E9_ZEROED}, ["test_sdpa_dtypes"]),
    "sdpa_only_3d_inputs": (
        {"scaled_dot_product_attention_answer": SDPA_3D_ONLY}, ["test_sdpa_ranks"]),
    "rotary_pairs_first_half_with_second_half": (
        {"apply_rotary_answer": ROTARY_HALVES}, ["test_rotary_formula"]),
    "rotary_rotates_backwards": (
        {"apply_rotary_answer": ROTARY_BACKWARDS}, ["test_rotary_formula"]),
    "rotary_ignores_positions": (
        {"apply_rotary_answer": ROTARY_IGNORES_POSITIONS}, ["test_rotary_positions"]),
    "rotary_float32_angles_for_float64": (
        {"apply_rotary_answer": ROTARY_FLOAT32_ANGLES}, ["test_rotary_ranks_dtypes"]),
    "rotary_no_error_for_odd_d": (
        {"apply_rotary_answer": ROTARY_NO_ODD_CHECK}, ["test_rotary_odd"]),
    "packed_padding_attends_to_padding": (
        {"packed_mask_answer": PACKED_PADDING_IS_A_DOCUMENT}, ["test_packed_mask_padding"]),
    "packed_causal_upper_triangle": (
        {"packed_mask_answer": PACKED_CAUSAL_UPPER}, ["test_packed_mask_causal"]),
    "packed_needs_a_batch_dimension": (
        {"packed_mask_answer": PACKED_NEEDS_BATCH}, ["test_packed_mask_1d"]),
    "cache_mask_hides_the_own_key": (
        {"cache_causal_mask_answer": CACHE_EXCLUDES_ITSELF},
        ["test_cache_causal_mask", "test_cache_causal_mask_one_token"]),
    "cache_mask_no_error_for_too_many_queries": (
        {"cache_causal_mask_answer": CACHE_NO_ERROR}, ["test_cache_causal_mask_raises"]),
    "previous_token_scores_too_soft": (
        {"previous_token_projections_answer": PREVIOUS_TOO_SOFT},
        ["test_previous_token_weights", "test_previous_token_long"]),
    "previous_token_gap_enough_for_short_sequences_only": (
        {"previous_token_projections_answer": PREVIOUS_GAP_FOR_SHORT}, ["test_previous_token_long"]),
}
