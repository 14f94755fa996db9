"""ex03 (self-attention): another correct solution and plausible mistakes.

Used by tests/test_other_solutions.py.
"""

SDPA = '''
def scaled_dot_product_attention(q, k, v, mask=None):
    """einsum scores; a hand-written softmax with the smallest float as the fill, masked exponentials
    set to 0, and a guarded division so that a query with no allowed key gets zero weights."""
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

CAUSAL_MASK = '''
def causal_mask(n):
    """True where the key position j is not after the query position i."""
    positions = torch.arange(n)
    return positions.unsqueeze(1) >= positions.unsqueeze(0)
'''

PADDING_MASK = '''
def padding_mask(lengths, max_len):
    """Compare every position with every length: True at positions p < lengths[b]."""
    return torch.as_tensor(lengths).reshape(-1, 1) > torch.arange(max_len).reshape(1, -1)
'''

POSITIONAL_ENCODING = '''
def sinusoidal_positional_encoding(max_len, d_model):
    """One angle per column (pair index j // 2), then sine or cosine chosen column by column."""
    columns = torch.arange(d_model)
    exponent = (2 * (columns // 2)).double() / d_model
    angles = torch.arange(max_len, dtype=torch.float64)[:, None] * torch.pow(10000.0, -exponent)[None, :]
    return torch.where(columns % 2 == 0, torch.sin(angles), torch.cos(angles)).to(torch.float32)
'''

SELF_ATTENTION = '''
class SelfAttention(nn.Module):
    """Single-head self-attention over the three projections of the same x."""

    def __init__(self, d_model, d_k=None, d_v=None):
        super().__init__()
        d_k = d_k or d_model
        d_v = d_v or d_model
        for name, size in (("W_q", d_k), ("W_k", d_k), ("W_v", d_v)):
            setattr(self, name, nn.Linear(d_model, size, bias=False))

    def forward(self, x, mask=None):
        q, k, v = (projection(x) for projection in (self.W_q, self.W_k, self.W_v))
        return scaled_dot_product_attention(q, k, v, mask)
'''

CORRECT = {
    "scaled_dot_product_attention_answer": SDPA,
    "causal_mask_answer": CAUSAL_MASK,
    "padding_mask_answer": PADDING_MASK,
    "sinusoidal_positional_encoding_answer": POSITIONAL_ENCODING,
    "self_attention_answer": SELF_ATTENTION,
}

SDPA_INVERTED_MASK = '''
def scaled_dot_product_attention(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(mask, -1e9)              # True taken as "blocked"
    weights = torch.softmax(scores, dim=-1)
    if mask is not None:
        weights = weights * (~mask).any(dim=-1, keepdim=True)
    return weights @ v, weights
'''

SDPA_UNSCALED = '''
def scaled_dot_product_attention(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1)                          # the 1/sqrt(d_k) is missing
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.nan_to_num(torch.softmax(scores, dim=-1))
    return weights @ v, weights
'''

SDPA_NAN_ON_EMPTY_ROWS = '''
def scaled_dot_product_attention(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))   # a query with no allowed key: NaN
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights
'''

POSITIONAL_ENCODING_EVEN_ONLY = '''
def sinusoidal_positional_encoding(max_len, d_model):
    position = torch.arange(max_len, dtype=torch.float64)[:, None]
    angle = position / 10000 ** (torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    pe = torch.zeros(max_len, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle)                            # one column too many when d_model is odd
    return pe.float()
'''

SELF_ATTENTION_SCALED_BY_D_MODEL = '''
class SelfAttention(nn.Module):
    def __init__(self, d_model, d_k=None, d_v=None):
        super().__init__()
        self.d_model = d_model
        self.W_q = nn.Linear(d_model, d_k or d_model, bias=False)
        self.W_k = nn.Linear(d_model, d_k or d_model, bias=False)
        self.W_v = nn.Linear(d_model, d_v or d_model, bias=False)

    def forward(self, x, mask=None):
        q, k, v = self.W_q(x), self.W_k(x), self.W_v(x)
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_model)   # d_model, not d_k
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        if mask is not None:
            weights = torch.where(mask.any(dim=-1, keepdim=True), weights, 0.0)
        return weights @ v, weights
'''

WRONG = {
    "sdpa_inverted_mask": (
        {"scaled_dot_product_attention_answer": SDPA_INVERTED_MASK},
        ["test_sdpa_mask", "test_self_attention_forward", "test_self_attention_gradients"]),
    "sdpa_missing_scale": (
        {"scaled_dot_product_attention_answer": SDPA_UNSCALED},
        ["test_sdpa_no_mask", "test_sdpa_mask", "test_self_attention_forward",
         "test_self_attention_gradients"]),
    "sdpa_nan_on_fully_masked_row": (
        {"scaled_dot_product_attention_answer": SDPA_NAN_ON_EMPTY_ROWS},
        ["test_sdpa_mask", "test_self_attention_forward", "test_self_attention_gradients"]),
    "positional_encoding_breaks_on_odd_d_model": (
        {"sinusoidal_positional_encoding_answer": POSITIONAL_ENCODING_EVEN_ONLY},
        ["test_sinusoidal_positional_encoding"]),
    "self_attention_scaled_by_sqrt_d_model": (
        {"self_attention_answer": SELF_ATTENTION_SCALED_BY_D_MODEL},
        ["test_self_attention_forward", "test_self_attention_gradients"]),
}
