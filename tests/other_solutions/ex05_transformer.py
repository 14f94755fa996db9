"""ex05 (Transformer): another correct solution and plausible mistakes.

Used by tests/test_other_solutions.py.
"""

from other_solutions._edit import edit

FEED_FORWARD = '''
class PositionwiseFeedForward(nn.Module):
    """linear2(dropout(max(linear1(x), 0))), with the ReLU written as a clamp."""

    def __init__(self, d_model, d_ff, dropout=0.0):
        super().__init__()
        self.linear1, self.linear2 = nn.Linear(d_model, d_ff), nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, x):
        hidden = self.linear1(x).clamp_min(0.0)
        return self.linear2(self.dropout(hidden))
'''

ENCODER_LAYER = '''
def own_self_attention(mha, x, real=None):
    """Self-attention by hand over the parameters of nn.MultiheadAttention `mha` (batch first).

    real: None or bool (batch, len), True at the keys that may be attended to.
    """
    q, k, v = F.linear(x, mha.in_proj_weight, mha.in_proj_bias).chunk(3, dim=-1)
    q, k, v = (t.unflatten(-1, (mha.num_heads, -1)).transpose(1, 2) for t in (q, k, v))  # (b, h, len, d)
    scores = torch.einsum("bhid,bhjd->bhij", q, k) / math.sqrt(q.shape[-1])
    if real is not None:
        scores = scores.masked_fill(~real[:, None, None, :], float("-inf"))
    weights = F.dropout(scores.softmax(dim=-1), p=mha.dropout, training=mha.training)
    context = torch.einsum("bhij,bhjd->bhid", weights, v).transpose(1, 2).flatten(2)
    return mha.out_proj(context)


class EncoderLayer(nn.Module):
    """Encoder layer whose attention is computed by hand from self_attn's parameters."""

    def __init__(self, d_model, num_heads, d_ff, dropout=0.0, norm_first=False):
        super().__init__()
        self.norm_first = norm_first
        self.self_attn = nn.MultiheadAttention(d_model, num_heads, dropout=dropout, batch_first=True)
        self.linear1 = nn.Linear(d_model, d_ff)
        self.linear2 = nn.Linear(d_ff, d_model)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.drop_attention, self.drop_hidden, self.drop_ff = (nn.Dropout(dropout) for _ in range(3))

    def _attention_block(self, z, padding_mask):
        return self.drop_attention(own_self_attention(self.self_attn, z, padding_mask))

    def _feed_forward_block(self, z):
        return self.drop_ff(self.linear2(self.drop_hidden(torch.relu(self.linear1(z)))))

    def forward(self, x, padding_mask=None):
        if self.norm_first:
            h = x + self._attention_block(self.norm1(x), padding_mask)
            return h + self._feed_forward_block(self.norm2(h))
        h = self.norm1(x + self._attention_block(x, padding_mask))
        return self.norm2(h + self._feed_forward_block(h))
'''

DECODER_LAYER = '''
def functional_attention(mha, query, memory, blocked_keys=None, attn_mask=None):
    """F.multi_head_attention_forward with the parameters of `mha` (it wants (len, batch, d_model))."""
    out, _ = F.multi_head_attention_forward(
        query.transpose(0, 1), memory.transpose(0, 1), memory.transpose(0, 1), mha.embed_dim, mha.num_heads,
        mha.in_proj_weight, mha.in_proj_bias, None, None, False, mha.dropout, mha.out_proj.weight,
        mha.out_proj.bias, training=mha.training, key_padding_mask=blocked_keys, need_weights=False,
        attn_mask=attn_mask)
    return out.transpose(0, 1)


class DecoderLayer(nn.Module):
    """Decoder layer over F.multi_head_attention_forward; the causal mask is an additive float mask."""

    def __init__(self, d_model, num_heads, d_ff, dropout=0.0, norm_first=False):
        super().__init__()
        self.norm_first = norm_first
        self.self_attn = nn.MultiheadAttention(d_model, num_heads, dropout=dropout, batch_first=True)
        self.multihead_attn = nn.MultiheadAttention(d_model, num_heads, dropout=dropout, batch_first=True)
        self.linear1 = nn.Linear(d_model, d_ff)
        self.linear2 = nn.Linear(d_ff, d_model)
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(d_model) for _ in range(3))
        self.drops = nn.ModuleList(nn.Dropout(dropout) for _ in range(4))

    def forward(self, x, memory, memory_padding_mask=None):
        length = x.shape[1]
        future = torch.full((length, length), float("-inf"), dtype=x.dtype, device=x.device).triu(1)
        blocked = None if memory_padding_mask is None else memory_padding_mask.logical_not()
        sublayers = [
            lambda z: functional_attention(self.self_attn, z, z, attn_mask=future),
            lambda z: functional_attention(self.multihead_attn, z, memory, blocked_keys=blocked),
            lambda z: self.linear2(self.drops[3](F.relu(self.linear1(z)))),
        ]
        norms = (self.norm1, self.norm2, self.norm3)
        for sublayer, norm, drop in zip(sublayers, norms, self.drops, strict=False):
            if self.norm_first:
                x = x + drop(sublayer(norm(x)))
            else:
                x = norm(x + drop(sublayer(x)))
        return x
'''

GREEDY_DECODE = '''
def greedy_decode(step_fn, bos_id, eos_id, max_len, batch_size=1):
    """Greedy decoding into a preallocated buffer filled with eos_id; returns the used columns."""
    tokens = torch.full((batch_size, max_len + 1), eos_id, dtype=torch.long)
    tokens[:, 0] = bos_id
    alive = torch.ones(batch_size, dtype=torch.bool)
    length = 1
    while length <= max_len and bool(alive.any()):
        logits = step_fn(tokens[:, :length].clone())
        choice = logits[:, length - 1, :].argmax(dim=-1)
        tokens[:, length] = torch.where(alive, choice, torch.tensor(eos_id))
        alive &= tokens[:, length] != eos_id
        length += 1
    return tokens[:, :length].clone()
'''

CORRECT = {
    "PositionwiseFeedForward_answer": FEED_FORWARD,
    "EncoderLayer_answer": ENCODER_LAYER,
    "DecoderLayer_answer": DECODER_LAYER,
    "greedy_decode_answer": GREEDY_DECODE,
}


FEED_FORWARD_WITHOUT_RELU = edit(FEED_FORWARD, "self.linear1(x).clamp_min(0.0)", "self.linear1(x)")
ENCODER_NORM_SWAPPED = edit(ENCODER_LAYER, "        if self.norm_first:\n",
                            "        if not self.norm_first:\n")
ENCODER_MASK_INVERTED = edit(ENCODER_LAYER, "scores.masked_fill(~real[:, None, None, :]",
                             "scores.masked_fill(real[:, None, None, :]")
DECODER_NOT_CAUSAL = edit(DECODER_LAYER, "functional_attention(self.self_attn, z, z, attn_mask=future)",
                          "functional_attention(self.self_attn, z, z)")
GREEDY_FIRST_POSITION = edit(GREEDY_DECODE, "logits[:, length - 1, :]", "logits[:, 0, :]")

FEED_FORWARD_DROPOUT_AFTER_LINEAR2 = edit(FEED_FORWARD, "return self.linear2(self.dropout(hidden))",
                                          "return self.dropout(self.linear2(hidden))")

WRONG = {
    "feed_forward_without_relu": (
        {"PositionwiseFeedForward_answer": FEED_FORWARD_WITHOUT_RELU},
        ["test_PositionwiseFeedForward"]),
    "encoder_post_ln_and_pre_ln_swapped": (
        {"EncoderLayer_answer": ENCODER_NORM_SWAPPED},
        ["test_EncoderLayer_post_ln", "test_EncoderLayer_pre_ln", "test_EncoderLayer_padding_mask"]),
    "encoder_padding_mask_inverted": (
        {"EncoderLayer_answer": ENCODER_MASK_INVERTED},
        ["test_EncoderLayer_padding_mask"]),
    "decoder_without_causal_mask": (
        {"DecoderLayer_answer": DECODER_NOT_CAUSAL},
        ["test_DecoderLayer", "test_DecoderLayer_causal"]),
    "feed_forward_dropout_after_linear2": (
        {"PositionwiseFeedForward_answer": FEED_FORWARD_DROPOUT_AFTER_LINEAR2},
        ["test_PositionwiseFeedForward"]),
    "greedy_argmax_of_first_position": (
        {"greedy_decode_answer": GREEDY_FIRST_POSITION},
        ["test_greedy_decode"]),
}
