"""ex06 (efficient attention): another correct solution and plausible mistakes.

Used by tests/test_other_solutions.py.
"""

from other_solutions._edit import edit

ONLINE_SOFTMAX = '''
def online_softmax(x):
    """One pass over the tensor itself in float64; a -inf element adds nothing and is skipped."""
    values = x.double()
    m = torch.tensor(float("-inf"), dtype=torch.float64)
    s = torch.tensor(0.0, dtype=torch.float64)
    for value in values:
        if torch.isneginf(value):
            continue
        m_new = torch.maximum(m, value)
        s = s * torch.exp(m - m_new) + torch.exp(value - m_new)    # exp(-inf) = 0 on the first element
        m = m_new
    return (torch.exp(values - m) / s).to(x.dtype)
'''

TILED_ATTENTION = '''
def tiled_attention(q, k, v, block_size, causal=False):
    """Blocks from torch.split, einsum scores, torch.where for the causal mask."""
    q = q * q.shape[-1] ** -0.5                                       # scale the queries once
    query_pos = torch.arange(q.shape[-2], device=q.device).unsqueeze(-1)
    running_max = q.new_full((*q.shape[:-1], 1), float("-inf"))
    denominator = q.new_zeros((*q.shape[:-1], 1))
    numerator = q.new_zeros((*q.shape[:-1], v.shape[-1]))
    start = 0
    for k_block, v_block in zip(k.split(block_size, dim=-2), v.split(block_size, dim=-2), strict=True):
        scores = torch.einsum("...id,...jd->...ij", q, k_block)
        if causal:
            key_pos = torch.arange(start, start + k_block.shape[-2], device=q.device)
            scores = torch.where(key_pos <= query_pos, scores, torch.full_like(scores, float("-inf")))
        new_max = torch.maximum(running_max, scores.amax(dim=-1, keepdim=True))  # finite: key 0 is in block 0
        correction = torch.exp(running_max - new_max)
        p = torch.exp(scores - new_max)
        denominator = correction * denominator + p.sum(dim=-1, keepdim=True)
        numerator = correction * numerator + torch.einsum("...ij,...jd->...id", p, v_block)
        running_max = new_max
        start += k_block.shape[-2]
    return numerator / denominator
'''

KV_CACHE = '''
class KVCache:
    """A preallocated buffer along the length axis that doubles its capacity when it is full."""

    def __init__(self):
        self._keys = None
        self._values = None
        self._size = 0

    def _grow(self, k, v, needed):
        capacity = max(needed, 2 * (0 if self._keys is None else self._keys.shape[-2]))
        keys = k.new_empty((*k.shape[:-2], capacity, k.shape[-1]))
        values = v.new_empty((*v.shape[:-2], capacity, v.shape[-1]))
        if self._size:
            keys[..., :self._size, :] = self._keys[..., :self._size, :]
            values[..., :self._size, :] = self._values[..., :self._size, :]
        self._keys, self._values = keys, values

    def append(self, k, v):
        new = k.shape[-2]
        if self._keys is None or self._size + new > self._keys.shape[-2]:
            self._grow(k, v, self._size + new)
        self._keys[..., self._size:self._size + new, :] = k
        self._values[..., self._size:self._size + new, :] = v
        self._size += new
        return self._keys[..., :self._size, :], self._values[..., :self._size, :]

    def __len__(self):
        return self._size
'''

DECODE_STEP = '''
def decode_step(q_new, k_new, v_new, cache):
    """Cache first, then one query row against every cached position (einsum)."""
    keys, values = cache.append(k_new, v_new)
    scores = torch.einsum("bhqd,bhkd->bhqk", q_new, keys) * q_new.shape[-1] ** -0.5
    return torch.einsum("bhqk,bhkd->bhqd", scores.softmax(dim=-1), values)
'''

SLIDING_WINDOW_MASK = '''
def sliding_window_mask(n, window):
    """The causal lower triangle minus everything at least `window` positions back."""
    ones = torch.ones(n, n, dtype=torch.bool)
    return ones.tril() & ~ones.tril(-window)
'''

CORRECT = {
    "online_softmax_answer": ONLINE_SOFTMAX,
    "tiled_attention_answer": TILED_ATTENTION,
    "kv_cache_answer": KV_CACHE,
    "decode_step_answer": DECODE_STEP,
    "sliding_window_mask_answer": SLIDING_WINDOW_MASK,
}


ONLINE_SOFTMAX_NOT_RESCALED = edit(ONLINE_SOFTMAX, "s = s * torch.exp(m - m_new) + ", "s = s + ")
TILED_NUMERATOR_NOT_RESCALED = edit(TILED_ATTENTION, "numerator = correction * numerator + ",
                                    "numerator = numerator + ")
TILED_CAUSAL_POSITIONS_IN_BLOCK = edit(TILED_ATTENTION, "torch.arange(start, start + k_block.shape[-2]",
                                       "torch.arange(0, k_block.shape[-2]")
DECODE_STEP_UNSCALED = edit(DECODE_STEP, " * q_new.shape[-1] ** -0.5", "")
SLIDING_WINDOW_TOO_WIDE = '''
def sliding_window_mask(n, window):
    i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
    return (j <= i) & (i - j <= window)                      # off by one: window + 1 positions
'''

SOFTMAX_CALLED = '''
def online_softmax(x):
    return torch.softmax(x, dim=0)                           # correct numbers, but not the task
'''
TILED_FULL_SCORES = '''
def tiled_attention(q, k, v, block_size, causal=False):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])   # the whole score matrix at once
    if causal:
        scores = scores.masked_fill(~torch.ones_like(scores, dtype=torch.bool).tril(), float("-inf"))
    return torch.softmax(scores, dim=-1) @ v
'''
TILED_FUSED = '''
def tiled_attention(q, k, v, block_size, causal=False):
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
'''

WRONG = {
    "online_softmax_sum_not_rescaled": (
        {"online_softmax_answer": ONLINE_SOFTMAX_NOT_RESCALED},
        ["test_online_softmax"]),
    "tiled_output_not_rescaled": (
        {"tiled_attention_answer": TILED_NUMERATOR_NOT_RESCALED},
        ["test_tiled_attention", "test_tiled_attention_causal"]),
    "tiled_causal_mask_uses_positions_inside_the_block": (
        {"tiled_attention_answer": TILED_CAUSAL_POSITIONS_IN_BLOCK},
        ["test_tiled_attention_causal"]),
    "decode_step_unscaled": (
        {"decode_step_answer": DECODE_STEP_UNSCALED},
        ["test_decode_step"]),
    "fused_attention_called": (
        {"tiled_attention_answer": TILED_FUSED},
        ["test_tiled_attention"]),
    "softmax_called_and_full_score_matrix": (
        {"online_softmax_answer": SOFTMAX_CALLED, "tiled_attention_answer": TILED_FULL_SCORES},
        ["test_online_softmax", "test_tiled_attention"]),
    "sliding_window_off_by_one": (
        {"sliding_window_mask_answer": SLIDING_WINDOW_TOO_WIDE},
        ["test_sliding_window_mask"]),
}
