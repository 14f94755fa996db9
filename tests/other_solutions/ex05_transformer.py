"""ex05 (Transformer): another correct solution and plausible mistakes.

Used by tests/test_other_solutions.py.
"""

from other_solutions._edit import edit

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
    """Decoder layer over F.multi_head_attention_forward; an additive float causal mask; the feed-forward
    network applied one position at a time (a loop, then torch.stack)."""

    def __init__(self, d_model, num_heads, d_ff, dropout=0.0, norm_first=False):
        super().__init__()
        self.norm_first = norm_first
        self.self_attn = nn.MultiheadAttention(d_model, num_heads, dropout=dropout, batch_first=True)
        self.multihead_attn = nn.MultiheadAttention(d_model, num_heads, dropout=dropout, batch_first=True)
        self.linear1 = nn.Linear(d_model, d_ff)
        self.linear2 = nn.Linear(d_ff, d_model)
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(d_model) for _ in range(3))
        self.drops = nn.ModuleList(nn.Dropout(dropout) for _ in range(4))

    def position_by_position(self, z):
        return torch.stack([self.linear2(self.drops[3](torch.relu(self.linear1(z[:, t]))))
                            for t in range(z.shape[1])], dim=1)

    def forward(self, x, memory, memory_padding_mask=None):
        length = x.shape[1]
        future = torch.full((length, length), float("-inf"), dtype=x.dtype, device=x.device).triu(1)
        blocked = None if memory_padding_mask is None else memory_padding_mask.logical_not()
        sublayers = [
            lambda z: functional_attention(self.self_attn, z, z, attn_mask=future),
            lambda z: functional_attention(self.multihead_attn, z, memory, blocked_keys=blocked),
            self.position_by_position,
        ]
        norms = (self.norm1, self.norm2, self.norm3)
        for sublayer, norm, drop in zip(sublayers, norms, self.drops, strict=False):
            if self.norm_first:
                x = x + drop(sublayer(norm(x)))
            else:
                x = norm(x + drop(sublayer(x)))
        return x
'''

LABEL_SMOOTHING = '''
def label_smoothed_loss(logits, targets, smoothing, pad_id=None):
    """The target distribution q built explicitly, then a masked sum divided by the number of terms."""
    vocab = logits.shape[-1]
    flat_logits, flat_targets = logits.reshape(-1, vocab), targets.reshape(-1)
    u = torch.ones(vocab, dtype=logits.dtype, device=logits.device)
    if pad_id is not None:
        u[pad_id] = 0.0
    u = u / u.sum()
    one_hot = F.one_hot(flat_targets, vocab).to(logits.dtype)
    q = (1 - smoothing) * one_hot + smoothing * u
    per_position = -(q * torch.log_softmax(flat_logits, dim=1)).sum(dim=1)
    counts = torch.ones_like(per_position) if pad_id is None else (flat_targets != pad_id).to(logits.dtype)
    return (per_position * counts).sum() / counts.sum()
'''

BEAM_SEARCH = '''
import heapq


def beam_search(step_fn, bos_id, eos_id, max_len, beam_size, alpha=0.0):
    """Python lists and heapq; step_fn called on one hypothesis at a time."""
    alive, done = [(0.0, [bos_id])], []
    for _ in range(max_len):
        extensions = []
        for log_prob, tokens in alive:
            row = torch.log_softmax(step_fn(torch.tensor([tokens], dtype=torch.long))[0, -1], dim=0).tolist()
            extensions += [(log_prob + value, tokens + [token]) for token, value in enumerate(row)]
        best = heapq.nlargest(beam_size, extensions, key=lambda e: e[0])
        done += [e for e in best if e[1][-1] == eos_id]
        alive = [e for e in best if e[1][-1] != eos_id]
        if not alive:
            break
    done += alive

    def score(entry):
        return entry[0] / ((5.0 + len(entry[1]) - 1) / 6.0) ** alpha

    winner = max(done, key=score)
    return torch.tensor(winner[1], dtype=torch.long), score(winner)
'''

SAMPLING = '''
def sampling_probs(logits, temperature=1.0, top_k=None, top_p=None):
    """Top-k through the k-th largest value; top-p with an inclusive running sum, back in vocabulary order
    through argsort of the permutation."""
    z = logits.div(temperature)
    if top_k is not None:
        k = min(top_k, z.shape[-1])
        threshold = torch.sort(z, dim=-1, descending=True).values[..., k - 1:k]
        z = torch.where(z >= threshold, z, torch.full_like(z, float("-inf")))
    probs = torch.softmax(z, dim=-1)
    if top_p is None:
        return probs
    order = torch.argsort(probs, dim=-1, descending=True)
    sorted_probs = torch.gather(probs, -1, order)
    running = torch.cumsum(sorted_probs, dim=-1)
    keep_sorted = (running - sorted_probs) < top_p          # the mass before a token is still short of top_p
    keep_sorted[..., 0] = True
    kept = torch.where(keep_sorted, sorted_probs, torch.zeros_like(sorted_probs))
    kept = kept / kept.sum(dim=-1, keepdim=True)
    return torch.gather(kept, -1, torch.argsort(order, dim=-1))
'''

LM_LOSS = '''
def lm_loss(model, sequences, pad_id):
    """pad_sequence pads on the right; the padded targets are masked out of a summed loss."""
    batch = torch.nn.utils.rnn.pad_sequence(list(sequences), batch_first=True, padding_value=pad_id)
    logits = model(batch[:, :-1])
    real = torch.zeros(batch.shape, dtype=torch.bool)
    for i, s in enumerate(sequences):
        real[i, :len(s)] = True
    targets_real = real[:, 1:]
    losses = F.cross_entropy(logits.transpose(1, 2), batch[:, 1:], reduction="none")   # (batch, len - 1)
    return (losses * targets_real).sum() / targets_real.sum()
'''

CORRECT = {
    "DecoderLayer_answer": DECODER_LAYER,
    "label_smoothed_loss_answer": LABEL_SMOOTHING,
    "beam_search_answer": BEAM_SEARCH,
    "sampling_probs_answer": SAMPLING,
    "lm_loss_answer": LM_LOSS,
}

# The course solution's decoder layer, to derive the mistakes that nn.MultiheadAttention's own call makes.
MODULE_DECODER = '''
class DecoderLayer(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.0, norm_first=False):
        super().__init__()
        self.norm_first = norm_first
        self.self_attn = nn.MultiheadAttention(d_model, num_heads, dropout=dropout, batch_first=True)
        self.multihead_attn = nn.MultiheadAttention(d_model, num_heads, dropout=dropout, batch_first=True)
        self.linear1 = nn.Linear(d_model, d_ff)
        self.linear2 = nn.Linear(d_ff, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)

    def forward(self, x, memory, memory_padding_mask=None):
        length = x.shape[1]
        future = torch.ones(length, length, dtype=torch.bool).triu(1)
        blocked = None if memory_padding_mask is None else ~memory_padding_mask
        sa = lambda z: self.self_attn(z, z, z, attn_mask=future, need_weights=False)[0]
        ca = lambda z: self.multihead_attn(z, memory, memory, key_padding_mask=blocked, need_weights=False)[0]
        ff = lambda z: self.linear2(F.relu(self.linear1(z)))
        if self.norm_first:
            x = x + sa(self.norm1(x))
            x = x + ca(self.norm2(x))
            return x + ff(self.norm3(x))
        x = self.norm1(x + sa(x))
        x = self.norm2(x + ca(x))
        return self.norm3(x + ff(x))
'''

DECODER_DIAGONAL_BLOCKED = edit(DECODER_LAYER, ".triu(1)", ".triu(0)")
DECODER_NOT_CAUSAL = edit(DECODER_LAYER, "functional_attention(self.self_attn, z, z, attn_mask=future)",
                          "functional_attention(self.self_attn, z, z)")
DECODER_WITHOUT_BATCH_FIRST = MODULE_DECODER.replace(", batch_first=True)", ")")
DECODER_CROSS_SWAPPED = edit(MODULE_DECODER, "self.multihead_attn(z, memory, memory,",
                             "self.multihead_attn(memory, z, z,")
DECODER_MEMORY_MASK_INVERTED = edit(DECODER_LAYER, "memory_padding_mask.logical_not()", "memory_padding_mask")
DECODER_NORM_SWAPPED = edit(DECODER_LAYER, "            if self.norm_first:\n",
                            "            if not self.norm_first:\n")

SMOOTHING_PAD_GETS_MASS = '''
def label_smoothed_loss(logits, targets, smoothing, pad_id=None):
    vocab = logits.shape[-1]
    return F.cross_entropy(logits.reshape(-1, vocab), targets.reshape(-1), label_smoothing=smoothing,
                           ignore_index=-100 if pad_id is None else pad_id)
'''
SMOOTHING_MEAN_OVER_ALL = edit(LABEL_SMOOTHING, "return (per_position * counts).sum() / counts.sum()",
                               "return (per_position * counts).sum() / counts.numel()")
SMOOTHING_LOG_OF_SOFTMAX = edit(LABEL_SMOOTHING, "torch.log_softmax(flat_logits, dim=1)",
                                "torch.log(torch.softmax(flat_logits, dim=1))")

BEAM_IGNORES_ALPHA = edit(BEAM_SEARCH, "return entry[0] / ((5.0 + len(entry[1]) - 1) / 6.0) ** alpha",
                          "return entry[0]")
BEAM_KEEPS_SEARCHING = edit(BEAM_SEARCH, "        alive = [e for e in best if e[1][-1] != eos_id]\n",
                            "        unfinished = [e for e in extensions if e[1][-1] != eos_id]\n"
                            "        alive = heapq.nlargest(beam_size, unfinished, key=lambda e: e[0])\n")

SAMPLING_DROPS_CROSSING_TOKEN = edit(SAMPLING, "keep_sorted = (running - sorted_probs) < top_p",
                                     "keep_sorted = running <= top_p")
SAMPLING_TEMPERATURE_MULTIPLIED = edit(SAMPLING, "z = logits.div(temperature)", "z = logits.mul(temperature)")
SAMPLING_IN_PLACE = edit(edit(SAMPLING, "z = logits.div(temperature)", "z = logits.div_(temperature)"),
                         "z = torch.where(z >= threshold, z, torch.full_like(z, float(\"-inf\")))",
                         "z.masked_fill_(z < threshold, float(\"-inf\"))")

LM_LEFT_PADDING = '''
def lm_loss(model, sequences, pad_id):
    longest = max(len(s) for s in sequences)
    batch = torch.full((len(sequences), longest), pad_id, dtype=torch.long)
    for i, s in enumerate(sequences):
        batch[i, longest - len(s):] = s
    logits = model(batch[:, :-1])
    targets = batch[:, 1:].masked_fill(batch[:, 1:] == pad_id, -100)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)
'''
LM_PADDING_COUNTED = edit(LM_LOSS, "return (losses * targets_real).sum() / targets_real.sum()",
                          "return losses.mean()")
LM_ONE_CALL_PER_SEQUENCE = '''
def lm_loss(model, sequences, pad_id):
    losses = [F.cross_entropy(model(s[None, :-1])[0], s[1:], reduction="none")
              for s in sequences if len(s) > 1]
    return torch.cat(losses).mean()
'''
LM_PER_SEQUENCE_MEAN = edit(LM_LOSS, "return (losses * targets_real).sum() / targets_real.sum()",
                            "return ((losses * targets_real).sum(dim=1) / targets_real.sum(dim=1)).mean()")

DECODER_CELLS = ["test_DecoderLayer_post_ln", "test_DecoderLayer_pre_ln", "test_DecoderLayer_memory_mask",
                 "test_DecoderLayer_causal"]

WRONG = {
    "decoder_causal_mask_blocks_the_diagonal": (
        {"DecoderLayer_answer": DECODER_DIAGONAL_BLOCKED}, DECODER_CELLS),
    "decoder_without_causal_mask": (
        {"DecoderLayer_answer": DECODER_NOT_CAUSAL}, ["test_DecoderLayer_causal"]),
    "decoder_without_batch_first": (
        {"DecoderLayer_answer": DECODER_WITHOUT_BATCH_FIRST}, DECODER_CELLS),
    "decoder_cross_attention_arguments_swapped": (
        {"DecoderLayer_answer": DECODER_CROSS_SWAPPED}, DECODER_CELLS),
    "decoder_memory_mask_inverted": (
        {"DecoderLayer_answer": DECODER_MEMORY_MASK_INVERTED}, ["test_DecoderLayer_memory_mask"]),
    "decoder_post_ln_and_pre_ln_swapped": (
        {"DecoderLayer_answer": DECODER_NORM_SWAPPED}, DECODER_CELLS),
    "smoothing_mass_on_the_padding_token": (
        {"label_smoothed_loss_answer": SMOOTHING_PAD_GETS_MASS}, ["test_label_smoothed_loss_pad_excluded"]),
    "smoothing_mean_over_all_positions": (
        {"label_smoothed_loss_answer": SMOOTHING_MEAN_OVER_ALL},
        ["test_label_smoothed_loss_no_smoothing", "test_label_smoothed_loss_pad_excluded"]),
    "smoothing_log_of_softmax": (
        {"label_smoothed_loss_answer": SMOOTHING_LOG_OF_SOFTMAX}, ["test_label_smoothed_loss_large_logits"]),
    "beam_search_ignores_alpha": (
        {"beam_search_answer": BEAM_IGNORES_ALPHA},
        ["test_beam_search_exhaustive", "test_beam_search_length_penalty", "test_beam_search_pruning"]),
    "beam_search_finished_hypotheses_take_no_slot": (
        {"beam_search_answer": BEAM_KEEPS_SEARCHING}, ["test_beam_search_pruning"]),
    "top_p_drops_the_crossing_token": (
        {"sampling_probs_answer": SAMPLING_DROPS_CROSSING_TOKEN},
        ["test_sampling_probs_top_p", "test_sampling_probs_combined"]),
    "temperature_multiplied": (
        {"sampling_probs_answer": SAMPLING_TEMPERATURE_MULTIPLIED},
        ["test_sampling_probs_temperature", "test_sampling_probs_combined"]),
    "sampling_changes_its_logits_in_place": (
        {"sampling_probs_answer": SAMPLING_IN_PLACE}, ["test_sampling_probs_shapes"]),
    "lm_loss_left_padding": (
        {"lm_loss_answer": LM_LEFT_PADDING}, ["test_lm_loss_padding", "test_lm_loss_edge_cases"]),
    "lm_loss_counts_padded_targets": (
        {"lm_loss_answer": LM_PADDING_COUNTED}, ["test_lm_loss_padding", "test_lm_loss_edge_cases"]),
    "lm_loss_one_call_per_sequence": (
        {"lm_loss_answer": LM_ONE_CALL_PER_SEQUENCE}, ["test_lm_loss_one_batch"]),
}

# Kept out of WRONG (at most 16), checked by hand: averaging each sequence's loss first fails
# test_lm_loss_padding and test_lm_loss_edge_cases.
_ = LM_PER_SEQUENCE_MEAN
