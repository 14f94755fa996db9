"""Check chapter 5's from-scratch implementations against PyTorch and direct formulas.

The chapter defines (cells tagged ``implementation``): ``PositionwiseFeedForward``, ``causal_mask``,
``attend``, ``EncoderLayer``, ``DecoderLayer``, ``sinusoidal_positions``, ``Transformer``,
``warmup_linear_decay``, ``greedy_decode`` and ``DecoderOnly``. References:
``torch.nn.TransformerEncoderLayer`` and
``torch.nn.TransformerDecoderLayer`` (weights copied with ``load_state_dict``; their masks mean
"blocked", converted with ``~``), ``torch.nn.TransformerEncoder``/``TransformerDecoder`` stacks,
and formulas written out here.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
import torch.nn.functional as F
from book_loader import load_chapter
from torch import nn

ch = load_chapter("ch05_transformer")


def close(got, expected, atol=1e-5, rtol=1e-5):
    torch.testing.assert_close(got.double(), expected.double(), atol=atol, rtol=rtol)


def randomise(module, seed):
    """Random weights, biases and LayerNorm parameters (PyTorch initialises biases to zero)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            base = 1.0 if "norm" in name and name.endswith("weight") else 0.0
            p.copy_(base + 0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return module


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.no_grad():
            return fn(*args, **kwargs)


def lengths_mask(lengths, length):
    return torch.arange(length) < torch.tensor(lengths)[:, None]


# ----------------------------------------------------------------------------- feed-forward
@pytest.mark.parametrize(("batch", "length", "d_model", "d_ff"), [(1, 1, 1, 1), (2, 5, 8, 32), (3, 1, 6, 5)])
def test_feed_forward_matches_formula(batch, length, d_model, d_ff):
    ffn = randomise(ch.PositionwiseFeedForward(d_model, d_ff), 0).eval()
    x = torch.randn(batch, length, d_model, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = torch.clamp(x @ ffn.linear1.weight.T + ffn.linear1.bias, min=0) @ ffn.linear2.weight.T
        expected = expected + ffn.linear2.bias
        close(ffn(x), expected)
        close(ffn(x), torch.stack([ffn(x[:, t]) for t in range(length)], dim=1))


def test_feed_forward_dropout_only_in_training():
    torch.manual_seed(0)
    ffn = ch.PositionwiseFeedForward(8, 64, dropout=0.5)
    x = torch.randn(2, 4, 8)
    with torch.no_grad():
        a, b = ffn.eval()(x), ffn.eval()(x)
        c = ffn.train()(x)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


# ----------------------------------------------------------------------------- encoder layer
ENC_CONFIGS = [  # batch, length, d_model, heads, d_ff, real lengths (None = no mask)
    (1, 1, 4, 1, 8, None), (1, 1, 4, 2, 8, [1]), (2, 6, 16, 4, 32, None), (3, 6, 16, 4, 32, [6, 2, 1]),
    (4, 3, 12, 3, 7, [3, 1, 2, 3]), (2, 9, 10, 5, 20, [1, 9]),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize(("batch", "length", "d_model", "heads", "d_ff", "lengths"), ENC_CONFIGS)
def test_encoder_layer_matches_pytorch(batch, length, d_model, heads, d_ff, lengths, norm_first, dtype):
    theirs = nn.TransformerEncoderLayer(d_model, heads, d_ff, dropout=0.0, batch_first=True,
                                        norm_first=norm_first)
    theirs = randomise(theirs.to(dtype), length + d_model).eval()
    ours = ch.EncoderLayer(d_model, heads, d_ff, norm_first=norm_first).to(dtype)
    ours.load_state_dict(theirs.state_dict())
    ours.eval()
    x = torch.randn(batch, length, d_model, generator=torch.Generator().manual_seed(batch), dtype=dtype)
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    if lengths is None:
        got, expected = quiet(ours, x), quiet(theirs, x)
    else:
        valid = lengths_mask(lengths, length)
        got, expected = quiet(ours, x, valid), quiet(theirs, x, src_key_padding_mask=~valid)
    assert got.shape == (batch, length, d_model) and got.dtype == dtype
    close(got, expected, atol=tol, rtol=tol)


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer_causal_matches_pytorch_is_causal(norm_first):
    theirs = randomise(nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True,
                                                  norm_first=norm_first), 3).eval()
    ours = ch.EncoderLayer(16, 4, 32, norm_first=norm_first)
    ours.load_state_dict(theirs.state_dict())
    ours.eval()
    x = torch.randn(2, 7, 16, generator=torch.Generator().manual_seed(3))
    mask = ~ch.causal_mask(7)
    close(quiet(ours, x, causal=True), quiet(theirs, x, src_mask=mask, is_causal=True))


def test_encoder_stack_matches_nn_transformer_encoder():
    layer = randomise(nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True), 4)
    stack = nn.TransformerEncoder(layer, num_layers=3, enable_nested_tensor=False).eval()
    ours = nn.ModuleList(ch.EncoderLayer(16, 4, 32) for _ in range(3))
    for mine, theirs in zip(ours, stack.layers, strict=True):
        mine.load_state_dict(theirs.state_dict())
    ours.eval()
    x = torch.randn(3, 5, 16, generator=torch.Generator().manual_seed(4))
    valid = lengths_mask([5, 3, 1], 5)
    h = x
    for mine in ours:
        h = quiet(mine, h, valid)
    close(h, quiet(stack, x, src_key_padding_mask=~valid))


def test_encoder_padding_does_not_leak_and_empty_sequence_gives_no_nan():
    torch.manual_seed(5)
    layer = randomise(ch.EncoderLayer(8, 2, 16), 5).eval()
    x = torch.randn(3, 4, 8, requires_grad=True)
    valid = lengths_mask([4, 2, 0], 4)                           # sequence 2: no real token at all
    out = layer(x, valid)
    assert torch.isfinite(out).all()
    noisy = x.detach() + 50.0 * (~valid)[:, :, None] * torch.randn(3, 4, 8)
    with torch.no_grad():
        close(layer(noisy, valid)[valid], out.detach()[valid])
    # the empty sequence gets zero attention weights: its attention output is out_proj.bias
    with torch.no_grad():
        attn = ch.attend(layer.self_attn, x[2:], x[2:], valid[2:])
    close(attn, layer.self_attn.out_proj.bias.expand(1, 4, 8))
    out.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_post_ln_and_pre_ln_differ_with_same_weights():
    theirs = randomise(nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True), 6)
    post, pre = ch.EncoderLayer(8, 2, 16), ch.EncoderLayer(8, 2, 16, norm_first=True)
    post.load_state_dict(theirs.state_dict())
    pre.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 3, 8, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        assert (post.eval()(x) - pre.eval()(x)).abs().max() > 1e-2
        # post-LN output is normalised per position (up to the LayerNorm's affine part)
        z = (post(x) - post.norm2.bias) / post.norm2.weight
        close(z.mean(-1), torch.zeros(2, 3), atol=1e-5)


# ----------------------------------------------------------------------------- decoder layer
DEC_CONFIGS = [  # batch, len_tgt, len_src, d_model, heads, d_ff, memory lengths
    (1, 1, 1, 4, 1, 8, None), (1, 1, 5, 8, 2, 16, [1]), (3, 5, 6, 16, 4, 32, [4, 2, 6]),
    (4, 3, 2, 12, 3, 7, [2, 1, 2, 1]), (2, 7, 7, 6, 6, 24, None),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize(("batch", "len_tgt", "len_src", "d_model", "heads", "d_ff", "lengths"), DEC_CONFIGS)
def test_decoder_layer_matches_pytorch(batch, len_tgt, len_src, d_model, heads, d_ff, lengths, norm_first,
                                       dtype):
    theirs = nn.TransformerDecoderLayer(d_model, heads, d_ff, dropout=0.0, batch_first=True,
                                        norm_first=norm_first)
    theirs = randomise(theirs.to(dtype), len_tgt * 7 + len_src).eval()
    ours = ch.DecoderLayer(d_model, heads, d_ff, norm_first=norm_first).to(dtype)
    ours.load_state_dict(theirs.state_dict())
    ours.eval()
    g = torch.Generator().manual_seed(batch)
    y = torch.randn(batch, len_tgt, d_model, generator=g, dtype=dtype)
    memory = torch.randn(batch, len_src, d_model, generator=g, dtype=dtype)
    tgt_mask = ~ch.causal_mask(len_tgt)
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    if lengths is None:
        got, expected = quiet(ours, y, memory), quiet(theirs, y, memory, tgt_mask=tgt_mask)
    else:
        valid = lengths_mask(lengths, len_src)
        got = quiet(ours, y, memory, valid)
        expected = quiet(theirs, y, memory, tgt_mask=tgt_mask, memory_key_padding_mask=~valid)
    assert got.shape == (batch, len_tgt, d_model) and got.dtype == dtype
    close(got, expected, atol=tol, rtol=tol)


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_is_causal(norm_first):
    layer = randomise(ch.DecoderLayer(16, 4, 32, norm_first=norm_first), 7).eval()
    g = torch.Generator().manual_seed(7)
    y, memory = torch.randn(2, 6, 16, generator=g), torch.randn(2, 4, 16, generator=g)
    with torch.no_grad():
        base = layer(y, memory)
        for j in range(6):
            changed = y.clone()
            changed[:, j] += torch.randn(2, 16, generator=g)
            out = layer(changed, memory)
            if j > 0:
                assert (out[:, :j] - base[:, :j]).abs().max() < 1e-6, f"position {j} leaks into the past"
            assert (out[:, j] - base[:, j]).abs().max() > 1e-4
        for t in range(1, 7):
            close(layer(y[:, :t], memory), base[:, :t])


def test_decoder_layer_ignores_padded_memory():
    layer = randomise(ch.DecoderLayer(8, 2, 16), 8).eval()
    g = torch.Generator().manual_seed(8)
    y, memory = torch.randn(2, 3, 8, generator=g), torch.randn(2, 5, 8, generator=g)
    valid = lengths_mask([2, 5], 5)
    with torch.no_grad():
        noisy = memory + 100.0 * (~valid)[:, :, None] * torch.randn(2, 5, 8, generator=g)
        close(layer(y, noisy, valid), layer(y, memory, valid))
        empty = lengths_mask([0, 5], 5)                          # no real memory token: no NaN
        assert torch.isfinite(layer(y, memory, empty)).all()


# ----------------------------------------------------------------------------- whole models
def test_sinusoidal_positions_formula():
    table = ch.sinusoidal_positions(50, 16)
    pos, i = 37, 5
    angle = torch.tensor(pos / 10000 ** (2 * i / 16))
    assert torch.isclose(table[pos, 2 * i], torch.sin(angle), atol=1e-5)
    assert torch.isclose(table[pos, 2 * i + 1], torch.cos(angle), atol=1e-5)


def test_pre_ln_transformer_matches_nn_transformer():
    """Pre-LN: nn.Transformer's stacks end with a LayerNorm, like ours (our post-LN ones do not)."""
    torch.manual_seed(9)
    ours = randomise(ch.Transformer(10, 12, d_model=16, num_heads=4, d_ff=32, norm_first=True), 9).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")           # the nested-tensor notice for norm_first=True
        theirs = nn.Transformer(16, 4, 2, 2, 32, dropout=0.0, batch_first=True, norm_first=True).eval()
    for mine, other in zip(ours.encoder, theirs.encoder.layers, strict=True):
        other.load_state_dict(mine.state_dict())
    for mine, other in zip(ours.decoder, theirs.decoder.layers, strict=True):
        other.load_state_dict(mine.state_dict())
    theirs.encoder.norm.load_state_dict(ours.encoder_norm.state_dict())
    theirs.decoder.norm.load_state_dict(ours.decoder_norm.state_dict())
    g = torch.Generator().manual_seed(9)
    src, tgt = torch.randint(0, 10, (3, 6), generator=g), torch.randint(0, 12, (3, 4), generator=g)
    valid = lengths_mask([6, 3, 1], 6)
    with torch.no_grad():
        s = ours.src_embed(src) + ours.positions[:6]
        t = ours.tgt_embed(tgt) + ours.positions[:4]
        hidden = quiet(theirs, s, t, tgt_mask=~ch.causal_mask(4), src_key_padding_mask=~valid,
                       memory_key_padding_mask=~valid)
        close(ours(src, tgt, valid), ours.generator(hidden))


def test_teacher_forcing_equals_prefix_by_prefix():
    torch.manual_seed(10)
    model = ch.Transformer(10, 12).eval()
    g = torch.Generator().manual_seed(10)
    src, tgt = torch.randint(0, 10, (2, 8), generator=g), torch.randint(0, 12, (2, 6), generator=g)
    with torch.no_grad():
        full = model(src, tgt)
        for t in range(1, 7):
            close(model(src, tgt[:, :t])[:, -1], full[:, t - 1])


def test_decoder_only_is_causal():
    torch.manual_seed(11)
    model = ch.DecoderOnly(12).eval()
    tokens = torch.randint(0, 12, (2, 9), generator=torch.Generator().manual_seed(11))
    with torch.no_grad():
        base = model(tokens)
        assert base.shape == (2, 9, 12)
        for j in range(9):
            changed = tokens.clone()
            changed[:, j] = (changed[:, j] + 1) % 12
            out = model(changed)
            assert torch.equal(out[:, :j], base[:, :j]) or (out[:, :j] - base[:, :j]).abs().max() < 1e-6
            assert (out[:, j] - base[:, j]).abs().max() > 1e-5


# ----------------------------------------------------------------------------- learning-rate schedule
@pytest.mark.parametrize(("warmup", "total"), [(30, 250), (1, 2), (10, 11), (4000, 100_000)])
def test_warmup_linear_decay_rises_then_falls_to_zero(warmup, total):
    factors = [ch.warmup_linear_decay(step, warmup, total) for step in range(1, total + 1)]
    assert factors[0] == pytest.approx(1 / warmup)
    assert factors[warmup - 1] == 1.0 and max(factors) == 1.0
    assert factors[-1] == 0.0
    rising, falling = factors[:warmup], factors[warmup - 1:]
    assert all(b > a for a, b in zip(rising, rising[1:], strict=False))
    assert all(b < a for a, b in zip(falling, falling[1:], strict=False))
    steps = [rising[i + 1] - rising[i] for i in range(len(rising) - 1)]
    assert all(abs(s - 1 / warmup) < 1e-12 for s in steps)


# ----------------------------------------------------------------------------- greedy decoding
def table_step_fn(plans, vocab=10, calls=None):
    def step_fn(prefix):
        if calls is not None:
            calls.append(prefix.clone())
        batch, t = prefix.shape
        logits = torch.zeros(batch, t, vocab)
        logits[:, :, vocab - 1] = 5.0            # earlier positions favour another token
        for b in range(batch):
            logits[b, -1] = 0.0
            logits[b, -1, plans[b][min(t - 1, len(plans[b]) - 1)]] = 10.0
        return logits
    return step_fn


def test_greedy_decode_pads_after_eos_and_stops():
    calls = []
    out = ch.greedy_decode(table_step_fn([[3, 1, 4, 4], [2, 5, 1, 9]], calls=calls), 0, 1, 5, batch_size=2)
    assert out.dtype == torch.long
    assert torch.equal(out, torch.tensor([[0, 3, 1, 1], [0, 2, 5, 1]]))
    assert len(calls) == 3 and torch.equal(calls[0], torch.zeros(2, 1, dtype=torch.long))


def test_greedy_decode_respects_max_len_and_default_batch():
    out = ch.greedy_decode(table_step_fn([[5, 5, 5, 5]]), 0, 1, 3)
    assert torch.equal(out, torch.tensor([[0, 5, 5, 5]]))
    out = ch.greedy_decode(table_step_fn([[1]]), 7, 1, 3)
    assert torch.equal(out, torch.tensor([[7, 1]]))


def test_greedy_decode_with_a_real_model_matches_manual_loop():
    torch.manual_seed(12)
    model = ch.Transformer(10, 12, d_model=16, num_heads=2, d_ff=32).eval()
    src = torch.randint(0, 10, (3, 5), generator=torch.Generator().manual_seed(12))
    with torch.no_grad():
        memory = model.encode(src)
        out = ch.greedy_decode(lambda p: model.decode(p, memory), 10, 11, 6, batch_size=3)
        for b in range(3):
            tokens = torch.tensor([[10]])
            for _ in range(out.shape[1] - 1):
                nxt = model.decode(tokens, memory[b:b + 1])[:, -1].argmax(-1, keepdim=True)
                if tokens[0, -1] == 11 and tokens.shape[1] > 1:
                    nxt = torch.tensor([[11]])
                tokens = torch.cat([tokens, nxt], dim=1)
            assert torch.equal(out[b], tokens[0])


def test_chapter_layers_do_not_warn():
    layer = copy.deepcopy(randomise(ch.EncoderLayer(8, 2, 16), 13)).eval()
    dec = randomise(ch.DecoderLayer(8, 2, 16), 13).eval()
    x = torch.randn(2, 4, 8)
    valid = lengths_mask([4, 2], 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with torch.no_grad():
            layer(x, valid)
            layer(x, valid, causal=True)
            dec(x, x, valid)
    _ = F  # keep the import for readers of this file
