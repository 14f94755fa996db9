"""ex04 (multi-head attention): another correct solution and plausible mistakes.

Used by tests/test_other_solutions.py.
"""

from other_solutions._edit import edit

SPLIT_HEADS = '''
def split_heads(x, num_heads):
    """Cut the features into num_heads consecutive blocks and stack the blocks as a new head axis."""
    return torch.stack(x.chunk(num_heads, dim=-1), dim=1)
'''

MERGE_HEADS = '''
def merge_heads(x):
    """Put the heads' outputs side by side along the features, in head order."""
    return torch.cat(x.unbind(dim=1), dim=-1)
'''

MULTI_HEAD_ATTENTION = '''
class MultiHeadAttention(nn.Module):
    """einsum attention per head, masked_fill with a large negative number, empty rows zeroed after."""

    def __init__(self, d_model, num_heads, dropout=0.0, bias=True):
        super().__init__()
        d_head, remainder = divmod(d_model, num_heads)
        if remainder:
            raise ValueError(f"num_heads={num_heads} does not divide d_model={d_model}")
        self.num_heads, self.scale = num_heads, d_head ** -0.5
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            setattr(self, name, nn.Linear(d_model, d_model, bias=bias))
        self.attn_drop = nn.Dropout(p=dropout)

    def forward(self, query, key, value, mask=None):
        q = split_heads(self.q_proj(query), self.num_heads) * self.scale
        k = split_heads(self.k_proj(key), self.num_heads)
        v = split_heads(self.v_proj(value), self.num_heads)
        scores = torch.einsum("bhqd,bhkd->bhqk", q, k)
        if mask is not None:
            scores = scores.masked_fill(~mask, -1e9)
        weights = scores.softmax(dim=-1)
        if mask is not None:
            weights = weights * mask.any(dim=-1, keepdim=True)     # no allowed key: zero, not uniform
        context = torch.einsum("bhqk,bhkd->bhqd", self.attn_drop(weights), v)
        return self.out_proj(merge_heads(context)), weights

    def load_from_torch(self, mha):
        """Build a state dict with our names from PyTorch's fused parameters and load it."""
        names = ("q_proj", "k_proj", "v_proj")
        state = {f"{n}.weight": w for n, w in zip(names, mha.in_proj_weight.detach().chunk(3), strict=True)}
        state["out_proj.weight"] = mha.out_proj.weight.detach()
        if mha.in_proj_bias is not None:
            biases = mha.in_proj_bias.detach().chunk(3)
            state.update({f"{n}.bias": b for n, b in zip(names, biases, strict=True)})
            state["out_proj.bias"] = mha.out_proj.bias.detach()
        self.load_state_dict(state)
'''

CORRECT = {
    "split_heads_answer": SPLIT_HEADS,
    "merge_heads_answer": MERGE_HEADS,
    "multi_head_attention_answer": MULTI_HEAD_ATTENTION,
}

SPLIT_WITHOUT_TRANSPOSE = '''
def split_heads(x, num_heads):
    batch, length, width = x.shape
    return x.reshape(batch, num_heads, length, width // num_heads)   # right shape, wrong contents
'''


SCALED_BY_D_MODEL = edit(MULTI_HEAD_ATTENTION, "num_heads, d_head ** -0.5", "num_heads, d_model ** -0.5")
INVERTED_MASK = edit(
    edit(MULTI_HEAD_ATTENTION, "scores.masked_fill(~mask, -1e9)", "scores.masked_fill(mask, -1e9)"),
    "weights * mask.any(dim=-1, keepdim=True)", "weights * (~mask).any(dim=-1, keepdim=True)")
ADDS_MINUS_INFINITY = edit(
    edit(MULTI_HEAD_ATTENTION, "scores = scores.masked_fill(~mask, -1e9)",
             'scores = scores + torch.zeros_like(scores).masked_fill(~mask, float("-inf"))'),
    "weights = weights * mask.any(dim=-1, keepdim=True)", "weights = torch.nan_to_num(weights, nan=0.0)")
_CLASS_WITHOUT_LOAD = MULTI_HEAD_ATTENTION[:MULTI_HEAD_ATTENTION.index("    def load_from_torch")]
LOAD_WITHOUT_IN_PROJ_BIAS = _CLASS_WITHOUT_LOAD + '''\
    def load_from_torch(self, mha):
        with torch.no_grad():
            for layer, w in zip((self.q_proj, self.k_proj, self.v_proj), mha.in_proj_weight.chunk(3)):
                layer.weight.copy_(w)
            self.out_proj.weight.copy_(mha.out_proj.weight)
            if mha.out_proj.bias is not None:
                self.out_proj.bias.copy_(mha.out_proj.bias)           # in_proj_bias is never copied
'''

WRONG = {
    "split_heads_without_transpose": (
        {"split_heads_answer": SPLIT_WITHOUT_TRANSPOSE},
        ["test_split_heads", "test_mha_forward", "test_mha_mask", "test_load_from_torch"]),
    "scores_scaled_by_sqrt_d_model": (
        {"multi_head_attention_answer": SCALED_BY_D_MODEL},
        ["test_mha_forward", "test_mha_mask", "test_load_from_torch"]),
    "inverted_mask": (
        {"multi_head_attention_answer": INVERTED_MASK},
        ["test_mha_mask", "test_load_from_torch"]),
    "minus_infinity_added_nan_gradients": (
        {"multi_head_attention_answer": ADDS_MINUS_INFINITY},
        ["test_mha_mask"]),
    "load_from_torch_forgets_in_proj_bias": (
        {"multi_head_attention_answer": LOAD_WITHOUT_IN_PROJ_BIAS},
        ["test_load_from_torch"]),
}
