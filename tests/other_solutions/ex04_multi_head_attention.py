"""ex04 (multi-head attention: grouped-query attention, conversion, heads built by hand): another correct
solution and plausible mistakes.

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

GROUPED_QUERY_ATTENTION = '''
def grouped_query_attention(q, k, v, mask=None):
    """Queries regrouped as (batch, num_kv_heads, group, len_q, d): each key/value head is read once per
    group by einsum; the smallest float as the fill, then rows without an allowed key multiplied by 0."""
    batch, num_heads, len_q, d_head = q.shape
    num_kv_heads, len_k = k.shape[1], k.shape[2]
    group, remainder = divmod(num_heads, num_kv_heads)
    if remainder:
        raise ValueError(f"{num_heads} query heads cannot share {num_kv_heads} key/value heads")
    if mask is not None and mask.dtype is not torch.bool:
        raise TypeError("mask must be boolean (True = may attend)")
    grouped = q.reshape(batch, num_kv_heads, group, len_q, d_head)
    scores = torch.einsum("bjgqd,bjkd->bjgqk", grouped, k) * d_head ** -0.5
    scores = scores.reshape(batch, num_heads, len_q, len_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    weights = scores.softmax(dim=-1)
    if mask is not None:
        weights = weights * mask.any(dim=-1, keepdim=True)
    out = torch.einsum("bjgqk,bjkd->bjgqd", weights.reshape(batch, num_kv_heads, group, len_q, len_k), v)
    return out.reshape(batch, num_heads, len_q, v.shape[-1]), weights
'''

GQA_MODULE = '''
class GroupedQueryAttention(nn.Module):
    """Layers made in a loop; the head counts kept as one tuple."""

    def __init__(self, d_model, num_heads, num_kv_heads, bias=True):
        super().__init__()
        if d_model % num_heads or num_heads % num_kv_heads:
            raise ValueError(f"cannot build {num_heads} heads over {d_model} features with {num_kv_heads} "
                             "key/value heads")
        self.heads = (num_heads, num_kv_heads)
        kv_width = d_model // num_heads * num_kv_heads
        widths = {"q_proj": d_model, "k_proj": kv_width, "v_proj": kv_width, "out_proj": d_model}
        for name, width in widths.items():
            setattr(self, name, nn.Linear(d_model, width, bias=bias))

    def forward(self, query, key, value, mask=None):
        num_heads, num_kv_heads = self.heads
        context, weights = grouped_query_attention(split_heads(self.q_proj(query), num_heads),
                                                   split_heads(self.k_proj(key), num_kv_heads),
                                                   split_heads(self.v_proj(value), num_kv_heads), mask=mask)
        return self.out_proj(merge_heads(context)), weights
'''

GQA_FROM_MULTIHEAD = '''
def gqa_from_multihead(mha, num_kv_heads):
    """Average head by head in a loop, then load everything through a state dict."""
    d_model, num_heads = mha.embed_dim, mha.num_heads
    d_head, group = d_model // num_heads, num_heads // num_kv_heads
    has_bias = mha.in_proj_bias is not None

    def averaged(t):
        heads = [t[i * d_head:(i + 1) * d_head] for i in range(num_heads)]
        groups = [torch.stack(heads[j * group:(j + 1) * group]) for j in range(num_kv_heads)]
        return torch.cat([members.mean(dim=0) for members in groups])

    names = ("q_proj", "k_proj", "v_proj")
    pooling = (lambda t: t.clone(), averaged, averaged)
    state = {}
    for name, w, pool in zip(names, mha.in_proj_weight.detach().split(d_model), pooling):
        state[f"{name}.weight"] = pool(w)
    state["out_proj.weight"] = mha.out_proj.weight.detach().clone()
    if has_bias:
        for name, b, pool in zip(names, mha.in_proj_bias.detach().split(d_model), pooling):
            state[f"{name}.bias"] = pool(b)
        state["out_proj.bias"] = mha.out_proj.bias.detach().clone()
    module = GroupedQueryAttention(d_model, num_heads, num_kv_heads, bias=has_bias)
    module.load_state_dict(state)
    return module
'''

TWO_BACK_HEAD = '''
def two_back_head():
    """Keys turned two steps forward instead of queries two steps back; NumPy float64 arrays."""
    scale, c, s = 30.0, np.cos(2 * OMEGA), np.sin(2 * OMEGA)
    w_q, w_k = np.zeros((VOCAB + 2, 2)), np.zeros((VOCAB + 2, 2))
    w_q[VOCAB:] = scale * np.eye(2)
    w_k[VOCAB:] = scale * np.array([[c, s], [-s, c]])     # key s points where query s + 2 points
    return w_q, w_k
'''

SUCCESSOR_TOKEN_HEAD = '''
def successor_token_head():
    """Tokens at shuffled angles (5a mod 16 steps); each key turned one token back, scaled unevenly."""
    def directions(order):
        angles = 2 * math.pi * ((5 * order) % VOCAB) / VOCAB
        return torch.stack([torch.cos(angles), torch.sin(angles)], dim=-1)
    w_q, w_k = torch.zeros(VOCAB + 2, 2), torch.zeros(VOCAB + 2, 2)
    w_q[:VOCAB] = 20.0 * directions(torch.arange(VOCAB))             # token a's query at a's direction
    w_k[:VOCAB] = 8.0 * directions((torch.arange(VOCAB) - 1) % VOCAB)  # token b's key at (b - 1)'s direction
    return w_q, w_k
'''

CORRECT = {
    "split_heads_answer": SPLIT_HEADS,
    "merge_heads_answer": MERGE_HEADS,
    "grouped_query_attention_answer": GROUPED_QUERY_ATTENTION,
    "gqa_module_answer": GQA_MODULE,
    "gqa_from_multihead_answer": GQA_FROM_MULTIHEAD,
    "two_back_head_answer": TWO_BACK_HEAD,
    "successor_token_head_answer": SUCCESSOR_TOKEN_HEAD,
}

SPLIT_WITHOUT_TRANSPOSE = '''
def split_heads(x, num_heads):
    batch, length, width = x.shape
    return x.reshape(batch, num_heads, length, width // num_heads)   # right shape, wrong contents
'''

MERGE_WITH_VIEW = '''
def merge_heads(x):
    batch, num_heads, length, d_head = x.shape
    return x.transpose(1, 2).view(batch, length, num_heads * d_head)   # not contiguous: raises
'''

_GQA_PLAIN = '''
def grouped_query_attention(q, k, v, mask=None):
    num_heads, num_kv_heads = q.shape[1], k.shape[1]
    if num_heads % num_kv_heads != 0:
        raise ValueError("num_heads must be a multiple of num_kv_heads")
    if mask is not None and mask.dtype != torch.bool:
        raise TypeError("the mask must be boolean")
    group = num_heads // num_kv_heads
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    if mask is not None:
        weights = torch.where(mask.any(dim=-1, keepdim=True), weights, 0.0)
    return weights @ v, weights
'''

GQA_TILED_HEADS = edit(
    _GQA_PLAIN, "k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)",
    "k, v = k.repeat(1, group, 1, 1), v.repeat(1, group, 1, 1)   # heads 0, 1, 0, 1")
GQA_INVERTED_MASK = edit(edit(_GQA_PLAIN, "scores.masked_fill(~mask,", "scores.masked_fill(mask,"),
                         "torch.where(mask.any(", "torch.where((~mask).any(")
_ZEROING = """
    if mask is not None:
        weights = torch.where(mask.any(dim=-1, keepdim=True), weights, 0.0)
"""
GQA_FILL_WITHOUT_ZEROING = edit(edit(_GQA_PLAIN, 'float("-inf"))', "-1e9)"), _ZEROING, "\n")
GQA_ADDS_MINUS_INFINITY = edit(
    edit(_GQA_PLAIN, 'scores = scores.masked_fill(~mask, float("-inf"))',
         'scores = scores + torch.zeros_like(scores).masked_fill(~mask, float("-inf"))'),
    "weights = torch.where(mask.any(dim=-1, keepdim=True), weights, 0.0)",
    "weights = torch.nan_to_num(weights, nan=0.0)")
GQA_CONVERTS_MASK = edit(_GQA_PLAIN, '''    if mask is not None and mask.dtype != torch.bool:
        raise TypeError("the mask must be boolean")''', '''    if mask is not None:
        mask = mask.to(torch.bool)                 # 0 (may attend, in an additive mask) becomes False''')
GQA_NO_HEAD_CHECK = edit(_GQA_PLAIN, '''    if num_heads % num_kv_heads != 0:
        raise ValueError("num_heads must be a multiple of num_kv_heads")
''', "")

_MODULE_PLAIN = '''
class GroupedQueryAttention(nn.Module):
    def __init__(self, d_model, num_heads, num_kv_heads, bias=True):
        super().__init__()
        if d_model % num_heads != 0:
            raise ValueError("d_model must be divisible by num_heads")
        if num_heads % num_kv_heads != 0:
            raise ValueError("num_heads must be a multiple of num_kv_heads")
        self.num_heads, self.num_kv_heads = num_heads, num_kv_heads
        d_head = d_model // num_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, num_kv_heads * d_head, bias=bias)
        self.v_proj = nn.Linear(d_model, num_kv_heads * d_head, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def forward(self, query, key, value, mask=None):
        q = split_heads(self.q_proj(query), self.num_heads)
        k = split_heads(self.k_proj(key), self.num_kv_heads)
        v = split_heads(self.v_proj(value), self.num_kv_heads)
        context, weights = grouped_query_attention(q, k, v, mask)
        return self.out_proj(merge_heads(context)), weights
'''

# keys and values as wide as in multi-head attention, split into num_heads heads
MODULE_FULL_WIDTH_KV = edit(
    edit(_MODULE_PLAIN, "nn.Linear(d_model, num_kv_heads * d_head, bias=bias)",
         "nn.Linear(d_model, d_model, bias=bias)"),
    "self.num_heads, self.num_kv_heads = num_heads, num_kv_heads",
    "self.num_heads, self.num_kv_heads = num_heads, num_heads")
MODULE_IGNORES_MASK = edit(_MODULE_PLAIN, "grouped_query_attention(q, k, v, mask)",
                           "grouped_query_attention(q, k, v)")
MODULE_NO_GROUP_CHECK = edit(_MODULE_PLAIN, '''        if num_heads % num_kv_heads != 0:
            raise ValueError("num_heads must be a multiple of num_kv_heads")
''', "")

_CONVERT_PLAIN = '''
def gqa_from_multihead(mha, num_kv_heads):
    d_model, num_heads = mha.embed_dim, mha.num_heads
    bias = mha.in_proj_bias is not None
    gqa = GroupedQueryAttention(d_model, num_heads, num_kv_heads, bias=bias)
    group, d_head = num_heads // num_kv_heads, d_model // num_heads

    def pool(t):
        return t.reshape(num_kv_heads, group, d_head, *t.shape[1:]).mean(dim=1).flatten(0, 1)

    with torch.no_grad():
        w_q, w_k, w_v = mha.in_proj_weight.chunk(3)
        gqa.q_proj.weight.copy_(w_q)
        gqa.k_proj.weight.copy_(pool(w_k))
        gqa.v_proj.weight.copy_(pool(w_v))
        gqa.out_proj.weight.copy_(mha.out_proj.weight)
        if bias:
            b_q, b_k, b_v = mha.in_proj_bias.chunk(3)
            gqa.q_proj.bias.copy_(b_q)
            gqa.k_proj.bias.copy_(pool(b_k))
            gqa.v_proj.bias.copy_(pool(b_v))
            gqa.out_proj.bias.copy_(mha.out_proj.bias)
    return gqa
'''

_POOL = "return t.reshape(num_kv_heads, group, d_head, *t.shape[1:]).mean(dim=1).flatten(0, 1)"
CONVERT_STRIDED_GROUPS = edit(   # heads j, j + num_kv_heads, ... averaged together
    _CONVERT_PLAIN, _POOL,
    "return t.reshape(group, num_kv_heads, d_head, *t.shape[1:]).mean(dim=0).flatten(0, 1)")
CONVERT_FIRST_HEAD = edit(   # the first head of each group kept, the others dropped
    _CONVERT_PLAIN, _POOL,
    "return t.reshape(num_kv_heads, group, d_head, *t.shape[1:])[:, 0].flatten(0, 1)")
CONVERT_SHARES_MEMORY = edit(   # parameters that are views of mha's tensors
    edit(_CONVERT_PLAIN, "gqa.q_proj.weight.copy_(w_q)", "gqa.q_proj.weight = nn.Parameter(w_q.detach())"),
    "gqa.out_proj.weight.copy_(mha.out_proj.weight)",
    "gqa.out_proj.weight = nn.Parameter(mha.out_proj.weight.detach())")

TWO_BACK_ONE_STEP = '''
def two_back_head():
    scale, c, s = 25.0, math.cos(OMEGA), math.sin(OMEGA)
    w_q, w_k = torch.zeros(VOCAB + 2, 2), torch.zeros(VOCAB + 2, 2)
    w_q[VOCAB:] = scale * torch.tensor([[c, -s], [s, c]])     # the chapter's head: one step back, not two
    w_k[VOCAB:] = scale * torch.eye(2)
    return w_q, w_k
'''

SUCCESSOR_SAME_TOKEN = '''
def successor_token_head():
    angles = 2 * math.pi * torch.arange(VOCAB) / VOCAB        # the chapter's same-token head, unchanged
    w = torch.zeros(VOCAB + 2, 2)
    w[:VOCAB] = 12.0 * torch.stack([torch.cos(angles), torch.sin(angles)], dim=-1)
    return w, w.clone()
'''


WRONG = {
    "split_heads_without_transpose": ({"split_heads_answer": SPLIT_WITHOUT_TRANSPOSE}, ["test_split_heads"]),
    "merge_heads_view_after_transpose": ({"merge_heads_answer": MERGE_WITH_VIEW}, ["test_merge_heads"]),
    "gqa_kv_heads_tiled_with_repeat": (
        {"grouped_query_attention_answer": GQA_TILED_HEADS}, ["test_gqa_values", "test_gqa_mask"]),
    "gqa_inverted_mask": (
        {"grouped_query_attention_answer": GQA_INVERTED_MASK}, ["test_gqa_mask", "test_gqa_empty_rows"]),
    "gqa_large_negative_fill_without_zeroing_empty_rows": (
        {"grouped_query_attention_answer": GQA_FILL_WITHOUT_ZEROING}, ["test_gqa_empty_rows"]),
    "gqa_minus_infinity_added_nan_gradients": (
        {"grouped_query_attention_answer": GQA_ADDS_MINUS_INFINITY}, ["test_gqa_empty_rows"]),
    "gqa_float_mask_converted_to_bool": (
        {"grouped_query_attention_answer": GQA_CONVERTS_MASK}, ["test_gqa_mask_dtype"]),
    "gqa_no_head_count_check": (
        {"grouped_query_attention_answer": GQA_NO_HEAD_CHECK}, ["test_gqa_head_count"]),
    "module_full_width_key_value_projections": (
        {"gqa_module_answer": MODULE_FULL_WIDTH_KV},
        ["test_gqa_module_layers", "test_gqa_module_forward", "test_gqa_module_mask"]),
    "module_ignores_mask": ({"gqa_module_answer": MODULE_IGNORES_MASK}, ["test_gqa_module_mask"]),
    "module_no_group_check": ({"gqa_module_answer": MODULE_NO_GROUP_CHECK}, ["test_gqa_module_errors"]),
    "convert_strided_groups": (
        {"gqa_from_multihead_answer": CONVERT_STRIDED_GROUPS},
        ["test_convert_exact", "test_convert_pooling"]),
    "convert_first_head_of_group": (
        {"gqa_from_multihead_answer": CONVERT_FIRST_HEAD}, ["test_convert_pooling"]),
    "convert_shares_memory_with_mha": (
        {"gqa_from_multihead_answer": CONVERT_SHARES_MEMORY}, ["test_convert_independent"]),
    "two_back_head_one_step_back": ({"two_back_head_answer": TWO_BACK_ONE_STEP}, ["test_two_back_head"]),
    "successor_head_is_the_same_token_head": (
        {"successor_token_head_answer": SUCCESSOR_SAME_TOKEN}, ["test_successor_token_head"]),
}
