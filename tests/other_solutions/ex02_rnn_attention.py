"""ex02 (RNN attention): another correct solution and plausible mistakes.

Used by tests/test_other_solutions.py.
"""

MASKED_SOFTMAX = '''
def masked_softmax(scores, valid_lens=None):
    """A hand-written softmax: large negative fill (torch.where), exponentials zeroed outside the mask."""
    len_k = scores.shape[-1]
    if valid_lens is None:
        allowed = torch.ones(1, 1, len_k, dtype=torch.bool, device=scores.device)
    else:
        lens = valid_lens.unsqueeze(-1) if valid_lens.dim() == 2 else valid_lens.view(-1, 1, 1)
        allowed = torch.arange(len_k, device=scores.device) < lens          # (batch, len_q or 1, len_k)
    filled = torch.where(allowed, scores, torch.full_like(scores, -1e9))
    exps = torch.exp(filled - filled.amax(dim=-1, keepdim=True)) * allowed
    total = exps.sum(dim=-1, keepdim=True)
    return exps / total.clamp_min(torch.finfo(scores.dtype).tiny)          # an empty row stays 0
'''

ADDITIVE_ATTENTION = '''
class AdditiveAttention(nn.Module):
    """score(q, k) = w_v . tanh(W_q q + W_k k), every (query, key) pair at once with einsum."""

    def __init__(self, query_size, key_size, num_hiddens, dropout=0.0):
        super().__init__()
        self.W_q = nn.Linear(query_size, num_hiddens, bias=False)
        self.W_k = nn.Linear(key_size, num_hiddens, bias=False)
        self.w_v = nn.Linear(num_hiddens, 1, bias=False)
        self.drop = nn.Dropout(p=dropout)

    def forward(self, queries, keys, values, valid_lens=None):
        hidden = torch.tanh(self.W_q(queries).unsqueeze(2) + self.W_k(keys).unsqueeze(1))  # (b, q, k, h)
        scores = torch.einsum("bqkh,h->bqk", hidden, self.w_v.weight[0])
        self.attention_weights = masked_softmax(scores, valid_lens)
        return torch.einsum("bqk,bkv->bqv", self.drop(self.attention_weights), values)
'''

LUONG_ATTENTION = '''
class LuongAttention(nn.Module):
    """Unscaled multiplicative attention; the "dot" variant has no W_a attribute at all."""

    SCORES = ("dot", "general")

    def __init__(self, query_size, key_size, score="dot"):
        super().__init__()
        if score not in self.SCORES:
            raise ValueError(f"score must be one of {self.SCORES}, not {score!r}")
        if score == "dot" and query_size != key_size:
            raise ValueError("the dot score needs queries and keys of the same size "
                             f"(query_size={query_size}, key_size={key_size})")
        self.kind = score
        if score == "general":
            self.W_a = nn.Linear(key_size, query_size, bias=False)

    def forward(self, queries, keys, values, valid_lens=None):
        projected = self.W_a(keys) if self.kind == "general" else keys
        scores = torch.einsum("bqd,bkd->bqk", queries, projected)
        self.attention_weights = masked_softmax(scores, valid_lens)
        return torch.einsum("bqk,bkv->bqv", self.attention_weights, values)
'''

CORRECT = {
    "masked_softmax_answer": MASKED_SOFTMAX,
    "additive_attention_answer": ADDITIVE_ATTENTION,
    "luong_attention_answer": LUONG_ATTENTION,
}

MASKED_SOFTMAX_NAN_ON_EMPTY_ROWS = '''
def masked_softmax(scores, valid_lens=None):
    if valid_lens is None:
        return torch.softmax(scores, dim=-1)
    lens = valid_lens if valid_lens.dim() == 2 else valid_lens[:, None].expand(-1, scores.shape[1])
    keep = torch.arange(scores.shape[-1])[None, None, :] < lens[:, :, None]
    return torch.softmax(scores.masked_fill(~keep, float("-inf")), dim=-1)   # a row of -inf gives NaN
'''

MASKED_SOFTMAX_LENGTHS_ALONG_KEYS = '''
def masked_softmax(scores, valid_lens=None):
    if valid_lens is None:
        return torch.softmax(scores, dim=-1)
    lens = valid_lens[:, None, :] if valid_lens.dim() == 2 else valid_lens[:, None, None]  # wrong axis
    keep = torch.arange(scores.shape[-1])[None, None, :] < lens
    weights = torch.softmax(scores.masked_fill(~keep, float("-inf")), dim=-1)
    return weights.masked_fill(~keep, 0.0)
'''

ADDITIVE_WITHOUT_TANH = ADDITIVE_ATTENTION.replace(
    "torch.tanh(self.W_q(queries).unsqueeze(2) + self.W_k(keys).unsqueeze(1))",
    "self.W_q(queries).unsqueeze(2) + self.W_k(keys).unsqueeze(1)")

LUONG_SCALED = LUONG_ATTENTION.replace(
    'scores = torch.einsum("bqd,bkd->bqk", queries, projected)',
    'scores = torch.einsum("bqd,bkd->bqk", queries, projected) / math.sqrt(queries.shape[-1])')

assert ADDITIVE_WITHOUT_TANH != ADDITIVE_ATTENTION
assert LUONG_SCALED != LUONG_ATTENTION

ADDITIVE_DROPOUT_ON_CONTEXT = ADDITIVE_ATTENTION.replace(
    'torch.einsum("bqk,bkv->bqv", self.drop(self.attention_weights), values)',
    'self.drop(torch.einsum("bqk,bkv->bqv", self.attention_weights, values))')

WRONG = {
    "masked_softmax_nan_on_empty_rows": (
        {"masked_softmax_answer": MASKED_SOFTMAX_NAN_ON_EMPTY_ROWS},
        ["test_masked_softmax_per_query", "test_additive_attention_forward",
         "test_additive_attention_gradients", "test_luong_dot", "test_luong_general"]),
    "masked_softmax_per_query_lengths_along_keys": (
        {"masked_softmax_answer": MASKED_SOFTMAX_LENGTHS_ALONG_KEYS},
        ["test_masked_softmax_per_query", "test_additive_attention_forward",
         "test_additive_attention_gradients", "test_luong_dot", "test_luong_general"]),
    "additive_attention_without_tanh": (
        {"additive_attention_answer": ADDITIVE_WITHOUT_TANH},
        ["test_additive_attention_forward", "test_additive_attention_gradients"]),
    "luong_scores_divided_by_sqrt_d": (
        {"luong_attention_answer": LUONG_SCALED},
        ["test_luong_dot", "test_luong_general"]),
    "additive_dropout_on_the_context": (
        {"additive_attention_answer": ADDITIVE_DROPOUT_ON_CONTEXT},
        ["test_additive_attention_forward"]),
}
