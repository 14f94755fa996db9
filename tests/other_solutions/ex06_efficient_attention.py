"""ex06 (efficient attention): another correct solution and plausible mistakes.

Used by tests/test_other_solutions.py.
"""

from other_solutions._edit import edit

STREAMING_LOGSUMEXP = '''
def streaming_logsumexp(chunks):
    """Merge each chunk's own log-sum-exp into the running one with torch.logaddexp."""
    total = None
    for chunk in chunks:
        piece = torch.logsumexp(chunk, dim=0)                 # -inf for an empty chunk
        total = piece if total is None else torch.logaddexp(total, piece)
    return total
'''

CAUSAL_TILED_ATTENTION = '''
def causal_tiled_attention(q, k, v, block_q, block_k):
    """einsum scores, torch.where masks, outputs collected per query block and concatenated."""
    n, d = q.shape[-2], q.shape[-1]
    q = q * d ** -0.5                                          # scale the queries once
    outs, lses, tiles = [], [], 0
    for q_block, q_pos in zip(q.split(block_q, dim=-2), torch.arange(n).split(block_q), strict=True):
        last_query = int(q_pos[-1])
        running_max = q_block.new_full((*q_block.shape[:-1], 1), float("-inf"))
        denominator = q_block.new_zeros((*q_block.shape[:-1], 1))
        numerator = q_block.new_zeros((*q_block.shape[:-1], v.shape[-1]))
        for k_start in range(0, n, block_k):
            if k_start > last_query:                  # the rest of the row is in the future
                break
            k_pos = torch.arange(k_start, min(k_start + block_k, n))
            scores = torch.einsum("...id,...jd->...ij", q_block, k[..., k_pos[0]:k_pos[-1] + 1, :])
            visible = k_pos[None, :] <= q_pos[:, None]
            scores = torch.where(visible, scores, torch.full_like(scores, float("-inf")))
            new_max = torch.maximum(running_max, scores.amax(dim=-1, keepdim=True))
            correction = torch.exp(running_max - new_max)
            weights = torch.exp(scores - new_max)
            denominator = correction * denominator + weights.sum(dim=-1, keepdim=True)
            numerator = correction * numerator + torch.einsum("...ij,...jd->...id", weights,
                                                              v[..., k_pos[0]:k_pos[-1] + 1, :])
            running_max = new_max
            tiles += 1
        outs.append(numerator / denominator)
        lses.append((running_max + denominator.log()).squeeze(-1))
    return torch.cat(outs, dim=-2), torch.cat(lses, dim=-1), tiles
'''

FLASH2_TRAFFIC = '''
def flash2_traffic(n, d, block_q, block_k, causal=False):
    """Q, O and L once; per query block, the keys it needs: all n, or (causal) up to its last key block."""
    total = 2 * n * d + n
    for q_start in range(0, n, block_q):
        last_query = min(q_start + block_q, n) - 1
        keys_read = min(n, (last_query // block_k + 1) * block_k) if causal else n
        total += 2 * keys_read * d
    return total
'''

RING_KV_CACHE = '''
class RingKVCache:
    """One buffer for keys and values together, index_copy_ to write, SDPA masking unwritten slots."""

    def __init__(self, window):
        self.window, self.count, self.kv = window, 0, None

    def step(self, q_new, k_new, v_new):
        d = k_new.shape[-1]
        if self.kv is None:
            self.kv = torch.zeros((*k_new.shape[:-2], self.window, d + v_new.shape[-1]), dtype=k_new.dtype)
        slot = torch.tensor([self.count % self.window])
        self.kv.index_copy_(-2, slot, torch.cat([k_new, v_new], dim=-1))
        self.count += 1
        written = torch.arange(self.window) < self.count        # True for every slot once the buffer is full
        return torch.nn.functional.scaled_dot_product_attention(
            q_new, self.kv[..., :d], self.kv[..., d:], attn_mask=written[None, :])

    def __len__(self):
        return min(self.count, self.window)
'''

CHUNK_ATTENTION = '''
def chunk_attention(q_chunk, k_seen, v_seen):
    """PyTorch's bottom-right causal bias."""
    from torch.nn.attention.bias import causal_lower_right

    bias = causal_lower_right(q_chunk.shape[-2], k_seen.shape[-2])
    return torch.nn.functional.scaled_dot_product_attention(q_chunk, k_seen, v_seen, attn_mask=bias)
'''

CORRECT = {
    "streaming_logsumexp_answer": STREAMING_LOGSUMEXP,
    "causal_tiled_attention_answer": CAUSAL_TILED_ATTENTION,
    "flash2_traffic_answer": FLASH2_TRAFFIC,
    "ring_kv_cache_answer": RING_KV_CACHE,
    "chunk_attention_answer": CHUNK_ATTENTION,
}

# ----------------------------------------------------------------------------- task 1
LSE_NOT_RESCALED = '''
def streaming_logsumexp(chunks):
    m, s = float("-inf"), 0.0
    for chunk in chunks:
        if chunk.numel() == 0:
            continue
        m = max(m, chunk.max().item())
        if m == float("-inf"):
            continue
        s = s + torch.exp(chunk - m).sum().item()       # the old terms keep the old reference point
    return m + math.log(s) if s > 0 else m
'''
# The three-pass softmax, as a student would adapt it to a stream: gather, then max, exp, sum.
LSE_THREE_PASS = '''
def streaming_logsumexp(chunks):
    x = torch.cat(list(chunks))
    m = x.max()
    e = torch.exp(x - m)
    return m + torch.log(e.sum())
'''
LSE_TWO_LOOPS = '''
def streaming_logsumexp(chunks):
    m = max(chunk.max() for chunk in chunks if chunk.numel())          # first pass: the maximum
    if torch.isneginf(m):
        return m
    s = sum(torch.exp(chunk - m).sum() for chunk in chunks)            # second pass: the sum
    return m + torch.log(s)
'''
LSE_NAN_ON_LEADING_INF = '''
def streaming_logsumexp(chunks):
    m = s = None
    for chunk in chunks:
        if chunk.numel() == 0:
            continue
        if m is None:
            m, s = chunk.max(), torch.exp(chunk - chunk.max()).sum()
            continue
        m_new = torch.maximum(m, chunk.max())
        s = s * torch.exp(m - m_new) + torch.exp(chunk - m_new).sum()   # -inf - (-inf) = NaN
        m = m_new
    return m + torch.log(s)
'''
LSE_FLOAT32 = '''
def streaming_logsumexp(chunks):
    m, s = torch.tensor(float("-inf")), torch.tensor(0.0)             # float32, whatever the chunks are
    for chunk in chunks:
        if chunk.numel() == 0:
            continue
        m_new = torch.maximum(m, chunk.max().float())
        if torch.isneginf(m_new):
            continue
        s = s * torch.exp(m - m_new) + torch.exp(chunk.float() - m_new).sum()
        m = m_new
    return m + torch.log(s)
'''

# ----------------------------------------------------------------------------- task 2
TILED_NO_SKIP = edit(CAUSAL_TILED_ATTENTION, "                break\n", "                pass\n")
# The case: every tile's scores kept alive, the softmax taken at the end (n^2 memory in all).
TILED_KEEPS_EVERY_TILE = '''
def causal_tiled_attention(q, k, v, block_q, block_k):
    n, d = q.shape[-2], q.shape[-1]
    rows, tiles = [], 0
    for q_start in range(0, n, block_q):                      # first every tile of every query block
        q_stop = min(q_start + block_q, n)
        row = []
        for k_start in range(0, q_stop, block_k):
            k_stop = min(k_start + block_k, n)
            s = q[..., q_start:q_stop, :] @ k[..., k_start:k_stop, :].transpose(-2, -1) / math.sqrt(d)
            future = torch.arange(k_start, k_stop)[None, :] > torch.arange(q_start, q_stop)[:, None]
            row.append(s.masked_fill(future, float("-inf")))
            tiles += 1
        rows.append(row)
    outs, lses = [], []
    for row in rows:                                          # then the softmax of each row of tiles
        scores = torch.cat(row, dim=-1)
        outs.append(torch.softmax(scores, dim=-1) @ v[..., :scores.shape[-1], :])
        lses.append(torch.logsumexp(scores, dim=-1))
    return torch.cat(outs, dim=-2), torch.cat(lses, dim=-1), tiles
'''
# The case: a precomputed n x n boolean causal mask, sliced for each tile.
TILED_PRECOMPUTED_MASK = edit(edit(CAUSAL_TILED_ATTENTION,
                                   "    outs, lses, tiles = [], [], 0\n",
                                   "    outs, lses, tiles = [], [], 0\n"
                                   "    causal = torch.ones(n, n, dtype=torch.bool).tril()\n"),
                              "            visible = k_pos[None, :] <= q_pos[:, None]\n",
                              "            visible = causal[q_pos[0]:q_pos[-1] + 1,\n"
                              "                             k_pos[0]:k_pos[-1] + 1]\n")
TILED_LSE_IS_MAX = edit(CAUSAL_TILED_ATTENTION, "lses.append((running_max + denominator.log()).squeeze(-1))",
                        "lses.append(running_max.squeeze(-1))")
TILED_FLOAT32_OUTPUT = '''
def causal_tiled_attention(q, k, v, block_q, block_k):
    n, d = q.shape[-2], q.shape[-1]
    out = torch.empty(*q.shape[:-1], v.shape[-1])             # float32, whatever the dtype of q
    lse = torch.empty(*q.shape[:-1])
    tiles = 0
    for q_start in range(0, n, block_q):
        q_stop = min(q_start + block_q, n)
        m = torch.full((*q.shape[:-2], q_stop - q_start, 1), float("-inf"), dtype=q.dtype)
        den = torch.zeros((*q.shape[:-2], q_stop - q_start, 1), dtype=q.dtype)
        acc = torch.zeros((*q.shape[:-2], q_stop - q_start, v.shape[-1]), dtype=q.dtype)
        for k_start in range(0, q_stop, block_k):
            k_stop = min(k_start + block_k, n)
            s = q[..., q_start:q_stop, :] @ k[..., k_start:k_stop, :].transpose(-2, -1) / math.sqrt(d)
            future = torch.arange(k_start, k_stop)[None, :] > torch.arange(q_start, q_stop)[:, None]
            s = s.masked_fill(future, float("-inf"))
            m_new = torch.maximum(m, s.amax(-1, keepdim=True))
            p = torch.exp(s - m_new)
            den = torch.exp(m - m_new) * den + p.sum(-1, keepdim=True)
            acc = torch.exp(m - m_new) * acc + p @ v[..., k_start:k_stop, :]
            m = m_new
            tiles += 1
        out[..., q_start:q_stop, :] = acc / den
        lse[..., q_start:q_stop] = (m + den.log()).squeeze(-1)
    return out, lse, tiles
'''
TILED_MASK_IN_TILE_POSITIONS = edit(CAUSAL_TILED_ATTENTION, "visible = k_pos[None, :] <= q_pos[:, None]",
                                    "visible = (k_pos - k_pos[0])[None, :] <= (q_pos - q_pos[0])[:, None]")

# ----------------------------------------------------------------------------- task 3
TRAFFIC_NO_SKIP = edit(FLASH2_TRAFFIC, "min(n, (last_query // block_k + 1) * block_k) if causal else n", "n")
TRAFFIC_FULL_LAST_BLOCKS = '''
def flash2_traffic(n, d, block_q, block_k, causal=False):
    q_blocks = -(-n // block_q)
    total = 0
    for i in range(q_blocks):
        last_query = min((i + 1) * block_q, n) - 1
        k_blocks = last_query // block_k + 1 if causal else -(-n // block_k)
        total += block_q * d + 2 * k_blocks * block_k * d + block_q * d + block_q   # every block counted full
    return total
'''
TRAFFIC_KV_ONCE = '''
def flash2_traffic(n, d, block_q, block_k, causal=False):
    return 2 * n * d + 2 * n * d + n                 # Q, K, V read once, O and L written once
'''

# ----------------------------------------------------------------------------- task 4
RING_EMPTY_SLOTS = edit(RING_KV_CACHE, "written = torch.arange(self.window) < self.count",
                        "written = torch.ones(self.window, dtype=torch.bool)")
RING_WITH_CAT = '''
class RingKVCache:
    """Right outputs, but the cache is rebuilt with torch.cat at every step."""

    def __init__(self, window):
        self.window, self.k, self.v = window, None, None

    def step(self, q_new, k_new, v_new):
        if self.k is None:
            self.k, self.v = k_new, v_new
        else:
            self.k = torch.cat([self.k, k_new], dim=-2)[..., -self.window:, :]
            self.v = torch.cat([self.v, v_new], dim=-2)[..., -self.window:, :]
        return torch.nn.functional.scaled_dot_product_attention(q_new, self.k, self.v)

    def __len__(self):
        return 0 if self.k is None else self.k.shape[-2]
'''
RING_LEN_COUNTS_STEPS = edit(RING_KV_CACHE, "return min(self.count, self.window)", "return self.count")

# ----------------------------------------------------------------------------- task 5
CHUNK_TOP_LEFT = '''
def chunk_attention(q_chunk, k_seen, v_seen):
    allowed = torch.ones(q_chunk.shape[-2], k_seen.shape[-2], dtype=torch.bool).tril()   # top-left aligned
    return torch.nn.functional.scaled_dot_product_attention(q_chunk, k_seen, v_seen, attn_mask=allowed)
'''

WRONG = {
    "logsumexp_not_rescaled": (
        {"streaming_logsumexp_answer": LSE_NOT_RESCALED},
        ["test_streaming_logsumexp"]),
    "logsumexp_three_pass_on_a_gathered_stream": (
        {"streaming_logsumexp_answer": LSE_THREE_PASS},
        ["test_streaming_logsumexp_inf", "test_streaming_logsumexp_one_pass"]),
    "logsumexp_two_loops_over_the_stream": (
        {"streaming_logsumexp_answer": LSE_TWO_LOOPS},
        ["test_streaming_logsumexp_one_pass"]),
    "logsumexp_nan_after_leading_minus_inf": (
        {"streaming_logsumexp_answer": LSE_NAN_ON_LEADING_INF},
        ["test_streaming_logsumexp_inf"]),
    "logsumexp_float32_running_sum": (
        {"streaming_logsumexp_answer": LSE_FLOAT32},
        ["test_streaming_logsumexp_float64"]),
    "tiled_no_tile_skipped": (
        {"causal_tiled_attention_answer": TILED_NO_SKIP},
        ["test_causal_tiled_attention_tiles"]),
    "tiled_keeps_every_tile_and_normalises_at_the_end": (
        {"causal_tiled_attention_answer": TILED_KEEPS_EVERY_TILE},
        ["test_causal_tiled_attention_memory"]),
    "tiled_precomputed_n_by_n_causal_mask": (
        {"causal_tiled_attention_answer": TILED_PRECOMPUTED_MASK},
        ["test_causal_tiled_attention_memory"]),
    "tiled_lse_is_the_running_max": (
        {"causal_tiled_attention_answer": TILED_LSE_IS_MAX},
        ["test_causal_tiled_attention_lse"]),
    "tiled_float32_output": (
        {"causal_tiled_attention_answer": TILED_FLOAT32_OUTPUT},
        ["test_causal_tiled_attention_float64"]),
    "tiled_mask_with_positions_inside_the_tile": (
        {"causal_tiled_attention_answer": TILED_MASK_IN_TILE_POSITIONS},
        ["test_causal_tiled_attention_output", "test_causal_tiled_attention_float64",
         "test_causal_tiled_attention_lse"]),
    "traffic_causal_tiles_not_skipped": (
        {"flash2_traffic_answer": TRAFFIC_NO_SKIP},
        ["test_flash2_traffic_causal"]),
    "traffic_last_blocks_counted_full": (
        {"flash2_traffic_answer": TRAFFIC_FULL_LAST_BLOCKS},
        ["test_flash2_traffic_ragged"]),

    "ring_attends_to_empty_slots": (
        {"ring_kv_cache_answer": RING_EMPTY_SLOTS},
        ["test_ring_kv_cache_filling"]),
    "ring_rebuilt_with_torch_cat": (
        {"ring_kv_cache_answer": RING_WITH_CAT},
        ["test_ring_kv_cache_memory"]),
    "chunk_mask_aligned_top_left": (
        {"chunk_attention_answer": CHUNK_TOP_LEFT},
        ["test_chunk_attention"]),
    "ring_len_counts_steps": (
        {"ring_kv_cache_answer": RING_LEN_COUNTS_STEPS},
        ["test_ring_kv_cache_filling"]),
    "traffic_first_loop_order": (
        {"flash2_traffic_answer": TRAFFIC_KV_ONCE},
        ["test_flash2_traffic", "test_flash2_traffic_causal", "test_flash2_traffic_ragged"]),
}
