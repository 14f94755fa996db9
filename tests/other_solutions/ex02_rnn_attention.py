"""ex02 (RNN attention): another correct solution and plausible mistakes.

Used by tests/test_other_solutions.py.
"""

from other_solutions._edit import edit

MASKED_SOFTMAX = '''
def masked_softmax(scores, mask=None):
    """By hand: the smallest float instead of -inf, exponentials shifted by the row maximum and zeroed
    outside the mask, an empty row divided by 1 instead of 0."""
    if mask is not None and not (torch.is_tensor(mask) and mask.dtype is torch.bool):
        raise TypeError("the mask must be boolean, True where a query may attend")
    if mask is None:
        mask = torch.ones((), dtype=torch.bool)
    mask = torch.broadcast_to(mask, scores.shape)
    filled = torch.where(mask, scores, torch.tensor(torch.finfo(scores.dtype).min, dtype=scores.dtype))
    exps = torch.exp(filled - filled.amax(dim=-1, keepdim=True)) * mask
    total = exps.sum(dim=-1, keepdim=True)
    return exps / torch.where(total > 0, total, torch.ones_like(total))
'''

CONCAT_ATTENTION = '''
class ConcatAttention(nn.Module):
    """W_a [q; k] = W_a[:, :d_q] q + W_a[:, d_q:] k: project queries and keys once, then broadcast."""

    def __init__(self, query_size, key_size, num_hiddens, dropout=0.0):
        super().__init__()
        self.query_size = query_size
        self.W_a = nn.Linear(query_size + key_size, num_hiddens, bias=False)
        self.v_a = nn.Linear(num_hiddens, 1, bias=False)
        self.p = dropout

    def forward(self, queries, keys, values, valid_lens=None):
        W_q, W_k = self.W_a.weight[:, :self.query_size], self.W_a.weight[:, self.query_size:]
        hidden = torch.tanh((queries @ W_q.T).unsqueeze(2) + (keys @ W_k.T).unsqueeze(1))   # (b, q, k, h)
        scores = torch.einsum("bqkh,h->bqk", hidden, self.v_a.weight[0])
        mask = None
        if valid_lens is not None:
            mask = (torch.arange(keys.shape[1]) < valid_lens.unsqueeze(-1)).unsqueeze(1)      # (b, 1, k)
        self.attention_weights = masked_softmax(scores, mask)
        dropped = F.dropout(self.attention_weights, self.p, training=self.training)
        return torch.einsum("bqk,bkv->bqv", dropped, values)
'''

LOCAL_P_ATTENTION = '''
class LocalPAttention(nn.Module):
    """einsum for the scores and the context; 2 sigma^2 = D^2 / 2 written out."""

    def __init__(self, query_size, num_hiddens, half_width):
        super().__init__()
        self.W_p = nn.Linear(query_size, num_hiddens, bias=False)
        self.v_p = nn.Linear(num_hiddens, 1, bias=False)
        self.half_width = half_width

    def forward(self, queries, keys, values, valid_lens):
        n = valid_lens.to(queries.dtype).view(-1, 1)                            # (batch, 1)
        self.positions = (n - 1) * torch.sigmoid(self.v_p(torch.tanh(self.W_p(queries)))[..., 0])
        D = self.half_width
        j = torch.arange(keys.shape[1], dtype=queries.dtype).view(1, 1, -1)
        distance = j - self.positions.unsqueeze(-1)                             # (batch, len_q, len_k)
        inside = (distance >= -D) & (distance <= D) & (j < n.unsqueeze(-1))
        align = masked_softmax(torch.einsum("bqd,bkd->bqk", queries, keys), inside)
        self.attention_weights = align * torch.exp(-2.0 * distance.pow(2) / D ** 2)
        return torch.einsum("bqk,bkv->bqv", self.attention_weights, values)
'''

GREEDY_DECODE = '''
def greedy_decode(step, state, batch_size, max_len, bos_id=1, eos_id=2, pad_id=0):
    """Python lists, one per sequence; the tensors are built at the end."""
    with torch.no_grad():
        feed = torch.tensor([bos_id] * batch_size)
        rows = [[] for _ in range(batch_size)]
        lengths = [max_len] * batch_size
        done = [False] * batch_size
        for t in range(max_len):
            logits, state = step(feed, state)
            best = logits.max(dim=1).indices
            for b in range(batch_size):
                if done[b]:
                    rows[b].append(pad_id)
                    continue
                token = int(best[b])
                rows[b].append(token)
                if token == eos_id:
                    done[b], lengths[b] = True, t
            feed = torch.tensor([row[-1] for row in rows])
            if all(done):
                break
        return torch.tensor(rows, dtype=torch.long), torch.tensor(lengths, dtype=torch.long)
'''

CORRECT = {
    "masked_softmax_answer": MASKED_SOFTMAX,
    "concat_attention_answer": CONCAT_ATTENTION,
    "local_p_attention_answer": LOCAL_P_ATTENTION,
    "greedy_decode_answer": GREEDY_DECODE,
}

# --- Task 1: masked_softmax -------------------------------------------------------------------------

MASKED_SOFTMAX_NAN_ON_EMPTY_ROWS = '''
def masked_softmax(scores, mask=None):
    if mask is None:
        return torch.softmax(scores, dim=-1)
    if mask.dtype != torch.bool:
        raise TypeError("boolean masks only")
    return torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)   # a row of -inf gives NaN
'''

MASKED_SOFTMAX_LARGE_NEGATIVE_FILL = '''
def masked_softmax(scores, mask=None):
    if mask is None:
        return torch.softmax(scores, dim=-1)
    if mask.dtype != torch.bool:
        raise TypeError("boolean masks only")
    return torch.softmax(scores.masked_fill(~mask, -1e9), dim=-1)            # empty rows: uniform
'''

MASKED_SOFTMAX_THREE_DIMS_ONLY = '''
def masked_softmax(scores, mask=None):
    if mask is None:
        return torch.softmax(scores, dim=-1)
    if mask.dtype != torch.bool:
        raise TypeError("boolean masks only")
    batch, len_q, len_k = scores.shape                                       # rank 3 only
    mask = mask.expand(batch, len_q, len_k)
    weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    return weights.masked_fill(~mask, 0.0)
'''

MASKED_SOFTMAX_CONVERTS_FLOAT_MASKS = edit(
    MASKED_SOFTMAX,
    '''    if mask is not None and not (torch.is_tensor(mask) and mask.dtype is torch.bool):
        raise TypeError("the mask must be boolean, True where a query may attend")
''',
    '''    if mask is not None:
        mask = mask.bool()                                                   # silently inverts 0/-inf masks
''')

MASKED_SOFTMAX_WITHOUT_MAX_SHIFT = edit(
    MASKED_SOFTMAX,
    "exps = torch.exp(filled - filled.amax(dim=-1, keepdim=True)) * mask",
    "exps = torch.exp(torch.where(mask, scores, torch.zeros_like(scores))) * mask   # overflows")

# --- Task 2: ConcatAttention --------------------------------------------------------------------------

CONCAT_DROPOUT_ALWAYS_ON = edit(
    CONCAT_ATTENTION,
    "F.dropout(self.attention_weights, self.p, training=self.training)",
    "F.dropout(self.attention_weights, self.p)")

CONCAT_DROPOUT_ON_THE_CONTEXT = edit(
    edit(CONCAT_ATTENTION,
         "dropped = F.dropout(self.attention_weights, self.p, training=self.training)",
         "dropped = self.attention_weights"),
    'return torch.einsum("bqk,bkv->bqv", dropped, values)',
    'return F.dropout(torch.einsum("bqk,bkv->bqv", dropped, values), self.p, training=self.training)')

CONCAT_QUERIES_PAIRED_WITH_REPEAT = '''
class ConcatAttention(nn.Module):
    """The provided code with two of its bugs fixed: the pairs are still built with repeat."""

    def __init__(self, query_size, key_size, num_hiddens, dropout=0.0):
        super().__init__()
        self.W_a = nn.Linear(query_size + key_size, num_hiddens, bias=False)
        self.v_a = nn.Linear(num_hiddens, 1, bias=False)
        self.drop = nn.Dropout(dropout)

    def forward(self, queries, keys, values, valid_lens=None):
        batch, len_q, len_k = queries.shape[0], queries.shape[1], keys.shape[1]
        q = queries.repeat(1, len_k, 1).reshape(batch, len_q, len_k, -1)
        k = keys.repeat(1, len_q, 1).reshape(batch, len_q, len_k, -1)
        scores = self.v_a(torch.tanh(self.W_a(torch.cat([q, k], dim=-1)))).squeeze(-1)
        mask = None
        if valid_lens is not None:
            mask = torch.arange(len_k)[None, None, :] < valid_lens[:, None, None]
        self.attention_weights = masked_softmax(scores, mask)
        return self.drop(self.attention_weights) @ values
'''

CONCAT_EMPTY_ROWS_UNIFORM = edit(
    CONCAT_ATTENTION,
    "        self.attention_weights = masked_softmax(scores, mask)\n",
    "        if mask is not None:\n"
    "            scores = scores.masked_fill(~mask, -1e9)                  # kept from the provided code\n"
    "        self.attention_weights = torch.softmax(scores, dim=-1)\n")

# --- Task 3: LocalPAttention --------------------------------------------------------------------------

LOCAL_P_POSITIONS_FROM_PADDED_LENGTH = edit(
    LOCAL_P_ATTENTION,
    "self.positions = (n - 1) * torch.sigmoid",
    "self.positions = (keys.shape[1] - 1) * torch.sigmoid")

LOCAL_P_SIGMA_IS_D = edit(
    LOCAL_P_ATTENTION,
    "torch.exp(-2.0 * distance.pow(2) / D ** 2)",
    "torch.exp(-distance.pow(2) / (2 * D ** 2))")

LOCAL_P_SOFTMAX_OVER_ALL_KEYS = edit(
    LOCAL_P_ATTENTION,
    'align = masked_softmax(torch.einsum("bqd,bkd->bqk", queries, keys), inside)',
    'align = masked_softmax(torch.einsum("bqd,bkd->bqk", queries, keys), j < n.unsqueeze(-1)) * inside')

LOCAL_P_POSITIONS_DETACHED = edit(
    LOCAL_P_ATTENTION,
    "distance = j - self.positions.unsqueeze(-1)",
    "distance = j - self.positions.detach().unsqueeze(-1)")

# --- Task 4: greedy_decode ----------------------------------------------------------------------------

GREEDY_NEVER_STOPS_EARLY = edit(GREEDY_DECODE, "            if all(done):\n                break\n", "")

GREEDY_TOKENS_AFTER_EOS = edit(
    GREEDY_DECODE,
    '''                if done[b]:
                    rows[b].append(pad_id)
                    continue
                token = int(best[b])
                rows[b].append(token)
                if token == eos_id:''',
    '''                token = int(best[b])
                rows[b].append(token)                                   # no <pad> after <eos>
                if token == eos_id and not done[b]:''')

GREEDY_LENGTH_COUNTS_EOS = edit(GREEDY_DECODE, "done[b], lengths[b] = True, t",
                                "done[b], lengths[b] = True, t + 1")

WRONG = {
    "masked_softmax_nan_on_empty_rows": (
        {"masked_softmax_answer": MASKED_SOFTMAX_NAN_ON_EMPTY_ROWS}, ["test_masked_softmax_empty_rows"]),
    "masked_softmax_large_negative_fill": (
        {"masked_softmax_answer": MASKED_SOFTMAX_LARGE_NEGATIVE_FILL}, ["test_masked_softmax_empty_rows"]),
    "masked_softmax_three_dims_only": (
        {"masked_softmax_answer": MASKED_SOFTMAX_THREE_DIMS_ONLY}, ["test_masked_softmax_ranks"]),
    "masked_softmax_converts_float_masks": (
        {"masked_softmax_answer": MASKED_SOFTMAX_CONVERTS_FLOAT_MASKS}, ["test_masked_softmax_float_mask"]),
    "masked_softmax_without_max_shift": (
        {"masked_softmax_answer": MASKED_SOFTMAX_WITHOUT_MAX_SHIFT}, ["test_masked_softmax_large_scores"]),
    "concat_dropout_active_in_eval_mode": (
        {"concat_attention_answer": CONCAT_DROPOUT_ALWAYS_ON}, ["test_concat_dropout"]),
    "concat_dropout_on_the_context": (
        {"concat_attention_answer": CONCAT_DROPOUT_ON_THE_CONTEXT}, ["test_concat_dropout"]),
    "concat_queries_paired_with_repeat": (
        {"concat_attention_answer": CONCAT_QUERIES_PAIRED_WITH_REPEAT}, ["test_concat_several_queries"]),
    "concat_empty_rows_uniform": (
        {"concat_attention_answer": CONCAT_EMPTY_ROWS_UNIFORM}, ["test_concat_empty_rows"]),
    "local_p_positions_from_padded_length": (
        {"local_p_attention_answer": LOCAL_P_POSITIONS_FROM_PADDED_LENGTH}, ["test_local_p_positions"]),
    "local_p_sigma_is_D": (
        {"local_p_attention_answer": LOCAL_P_SIGMA_IS_D}, ["test_local_p_window"]),
    "local_p_softmax_over_all_keys": (
        {"local_p_attention_answer": LOCAL_P_SOFTMAX_OVER_ALL_KEYS}, ["test_local_p_window"]),
    "local_p_positions_detached": (
        {"local_p_attention_answer": LOCAL_P_POSITIONS_DETACHED}, ["test_local_p_gradients"]),
    "greedy_decode_never_stops_early": (
        {"greedy_decode_answer": GREEDY_NEVER_STOPS_EARLY}, ["test_greedy_decode_stops_early"]),
    "greedy_decode_tokens_after_eos": (
        {"greedy_decode_answer": GREEDY_TOKENS_AFTER_EOS}, ["test_greedy_decode_tokens"]),
    "greedy_decode_length_counts_eos": (
        {"greedy_decode_answer": GREEDY_LENGTH_COUNTS_EOS}, ["test_greedy_decode_lengths"]),
}
