"""Check chapter 4's from-scratch implementations against PyTorch and direct formulas.

The chapter defines (cells tagged ``implementation``): ``split_heads``, ``merge_heads``,
``scaled_dot_product_attention``, ``MultiHeadAttention`` (with ``load_from_torch``),
``mha_multiply_adds`` and ``to_torch_attn_mask``. References: ``torch.nn.MultiheadAttention``
(its opposite mask polarity converted with ``~``), ``torch.nn.functional.scaled_dot_product_attention``,
``torch.utils.flop_counter.FlopCounterMode`` and per-head slicing written out here.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from book_loader import load_chapter
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

ch = load_chapter("ch04_multi_head_attention")


def close(got, expected, atol=1e-5, rtol=1e-5):
    torch.testing.assert_close(got.double(), expected.double(), atol=atol, rtol=rtol)


def torch_pair(d_model, num_heads, bias=True, seed=0, dtype=torch.float32):
    """A random nn.MultiheadAttention (eval) and the chapter's module with its weights copied in."""
    torch.manual_seed(seed)
    theirs = nn.MultiheadAttention(d_model, num_heads, bias=bias, batch_first=True).to(dtype).eval()
    with torch.no_grad():  # make the biases non-zero (PyTorch initialises them to zero)
        for p in theirs.parameters():
            p.normal_(0.0, 0.5)
    ours = ch.MultiHeadAttention(d_model, num_heads, bias=bias).to(dtype)
    ours.load_from_torch(theirs)
    return theirs, ours.eval()


# ----------------------------------------------------------------------------- split / merge
@pytest.mark.parametrize(("batch", "length", "num_heads", "d_head"),
                         [(1, 1, 1, 1), (2, 3, 2, 2), (3, 5, 4, 3), (1, 7, 8, 1), (2, 4, 1, 6)])
def test_split_heads_matches_per_head_slices(batch, length, num_heads, d_head):
    g = torch.Generator().manual_seed(length * 10 + num_heads)
    x = torch.randn(batch, length, num_heads * d_head, generator=g)
    expected = torch.stack([x[:, :, h * d_head:(h + 1) * d_head] for h in range(num_heads)], dim=1)
    got = ch.split_heads(x, num_heads)
    assert got.shape == (batch, num_heads, length, d_head)
    assert torch.equal(got, expected)
    assert torch.equal(got, x.unflatten(-1, (num_heads, d_head)).permute(0, 2, 1, 3))
    merged = ch.merge_heads(got)
    assert merged.shape == x.shape
    assert torch.equal(merged, x)


def test_merge_heads_matches_concatenation():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 5, 4, generator=g)                    # (batch, heads, len, d_head)
    assert torch.equal(ch.merge_heads(x), torch.cat(x.unbind(dim=1), dim=-1))


def test_split_heads_rejects_indivisible_width():
    with pytest.raises(ValueError):
        ch.split_heads(torch.zeros(1, 2, 10), 3)


# ----------------------------------------------------------------------------- attention helper
@pytest.mark.parametrize("mask_kind", ["none", "random", "causal", "padding"])
def test_helper_matches_pytorch_sdpa(mask_kind):
    g = torch.Generator().manual_seed(5)
    q = torch.randn(2, 3, 6, 4, generator=g)
    k = torch.randn(2, 3, 8, 4, generator=g)
    v = torch.randn(2, 3, 8, 5, generator=g)
    mask = {
        "none": None,
        "random": (torch.rand(2, 3, 6, 8, generator=g) < 0.6) | (torch.arange(8) == 0),
        "causal": torch.ones(6, 8, dtype=torch.bool).tril(),
        "padding": (torch.arange(8) < torch.tensor([8, 3])[:, None])[:, None, None, :],
    }[mask_kind]
    out, w = ch.scaled_dot_product_attention(q, k, v, mask)
    close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    scores = q @ k.transpose(-2, -1) / 2.0
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    close(w, torch.softmax(scores, dim=-1))


def test_helper_fully_masked_rows_are_zero_and_gradients_finite():
    g = torch.Generator().manual_seed(6)
    q, k, v = (torch.randn(1, 2, 3, 4, generator=g, requires_grad=True) for _ in range(3))
    mask = torch.ones(3, 3, dtype=torch.bool)
    mask[1] = False
    out, w = ch.scaled_dot_product_attention(q, k, v, mask)
    assert torch.equal(w[..., 1, :], torch.zeros(1, 2, 3))
    assert torch.equal(out[..., 1, :], torch.zeros(1, 2, 4))
    out.sum().backward()
    for t in (q, k, v):
        assert torch.isfinite(t.grad).all()


# ----------------------------------------------------------------------------- the module
def test_constructor_contract():
    m = ch.MultiHeadAttention(12, 3)
    for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
        layer = getattr(m, name)
        assert isinstance(layer, nn.Linear)
        assert layer.weight.shape == (12, 12)
        assert layer.bias is not None
    m = ch.MultiHeadAttention(12, 3, bias=False)
    assert all(getattr(m, n).bias is None for n in ("q_proj", "k_proj", "v_proj", "out_proj"))
    assert sum(p.numel() for p in ch.MultiHeadAttention(12, 4).parameters()) == 4 * 12 * 12 + 4 * 12
    with pytest.raises(ValueError):
        ch.MultiHeadAttention(10, 3)


CONFIGS = [  # (batch, len_q, len_k, d_model, num_heads, bias)
    (1, 1, 1, 1, 1, True),
    (1, 1, 4, 4, 4, False),       # d_head = 1
    (2, 5, 7, 16, 4, True),
    (3, 6, 2, 12, 3, False),
    (2, 4, 4, 8, 1, True),
    (4, 3, 9, 30, 5, True),
]


def make_masks(batch, num_heads, len_q, len_k, seed):
    """Course masks (True = may attend) of every broadcast shape, none with a fully masked row."""
    g = torch.Generator().manual_seed(seed)
    keep_first = torch.arange(len_k) == 0
    lengths = torch.randint(1, len_k + 1, (batch,), generator=g)
    return {
        "none": None,
        "causal (len_q, len_k)": torch.ones(len_q, len_k, dtype=torch.bool).tril(),
        "padding (batch, 1, 1, len_k)": (torch.arange(len_k) < lengths[:, None])[:, None, None, :],
        "per head (batch, heads, len_q, len_k)":
            (torch.rand(batch, num_heads, len_q, len_k, generator=g) < 0.5) | keep_first,
        "shared over heads (batch, 1, len_q, len_k)":
            (torch.rand(batch, 1, len_q, len_k, generator=g) < 0.5) | keep_first,
    }


def torch_call(theirs, query, key, value, mask, num_heads):
    """nn.MultiheadAttention with a course mask converted to its polarity (True = blocked)."""
    batch, len_q, len_k = query.shape[0], query.shape[1], key.shape[1]
    attn_mask = None
    if mask is not None:
        full = mask.expand(batch, num_heads, len_q, len_k).reshape(batch * num_heads, len_q, len_k)
        attn_mask = ~full
    return theirs(query, key, value, attn_mask=attn_mask, need_weights=True, average_attn_weights=False)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("batch", "len_q", "len_k", "d_model", "num_heads", "bias"), CONFIGS)
def test_module_matches_nn_multihead_attention(batch, len_q, len_k, d_model, num_heads, bias, dtype):
    theirs, ours = torch_pair(d_model, num_heads, bias=bias, seed=len_q + len_k, dtype=dtype)
    g = torch.Generator().manual_seed(d_model)
    query = torch.randn(batch, len_q, d_model, generator=g, dtype=dtype)
    key = torch.randn(batch, len_k, d_model, generator=g, dtype=dtype)
    value = torch.randn(batch, len_k, d_model, generator=g, dtype=dtype)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    for name, mask in make_masks(batch, num_heads, len_q, len_k, seed=batch).items():
        with torch.no_grad():
            out, w = ours(query, key, value, mask=mask)
            ref_out, ref_w = torch_call(theirs, query, key, value, mask, num_heads)
        assert out.dtype == dtype and w.dtype == dtype, name
        assert out.shape == (batch, len_q, d_model), name
        assert w.shape == (batch, num_heads, len_q, len_k), name
        close(out, ref_out, atol=tol, rtol=tol)
        close(w, ref_w, atol=tol, rtol=tol)


def test_key_padding_mask_and_attn_mask_forms_agree():
    theirs, ours = torch_pair(16, 4, seed=11)
    g = torch.Generator().manual_seed(11)
    x = torch.randn(3, 5, 16, generator=g)
    memory = torch.randn(3, 6, 16, generator=g)
    valid = torch.arange(6) < torch.tensor([6, 2, 4])[:, None]      # (batch, len_k)
    with torch.no_grad():
        out, w = ours(x, memory, memory, mask=valid[:, None, None, :])
        ref_out, ref_w = theirs(x, memory, memory, key_padding_mask=~valid, average_attn_weights=False)
        close(out, ref_out)
        close(w, ref_w)
        causal = torch.ones(5, 5, dtype=torch.bool).tril()
        out, w = ours(x, x, x, mask=causal)
        ref_out, ref_w = theirs(x, x, x, attn_mask=~causal, average_attn_weights=False)
        close(out, ref_out)
        close(w, ref_w)
        _, averaged = theirs(x, x, x, attn_mask=~causal)           # default: mean over heads
        close(averaged, w.mean(dim=1))


def test_each_head_matches_pytorch_sdpa():
    _, ours = torch_pair(12, 3, seed=2)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 4, 12, generator=g)
    memory = torch.randn(2, 6, 12, generator=g)
    mask = (torch.rand(2, 1, 4, 6, generator=g) < 0.5) | (torch.arange(6) == 5)
    with torch.no_grad():
        out, w = ours(x, memory, memory, mask=mask)
        q = ours.q_proj(x).view(2, 4, 3, 4).transpose(1, 2)
        k = ours.k_proj(memory).view(2, 6, 3, 4).transpose(1, 2)
        v = ours.v_proj(memory).view(2, 6, 3, 4).transpose(1, 2)
        context = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        expected = ours.out_proj(context.transpose(1, 2).reshape(2, 4, 12))
    close(out, expected)


def test_fully_masked_rows_give_zero_weights_not_nan():
    theirs, ours = torch_pair(8, 2, seed=4)
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 3, 8, generator=g, requires_grad=True)
    mask = torch.ones(2, 1, 3, 3, dtype=torch.bool)
    mask[0, :, 1] = False                                           # batch 0, query 1: nothing
    mask[1] = False                                                 # batch 1: nothing at all
    out, w = ours(x, x, x, mask=mask)
    assert torch.isfinite(out).all() and torch.isfinite(w).all()
    assert torch.equal(w[0, :, 1], torch.zeros(2, 3))
    assert torch.equal(w[1], torch.zeros(2, 3, 3))
    close(out[1], ours.out_proj.bias.detach().expand(3, 8))
    with torch.no_grad():
        ref_out, ref_w = torch_call(theirs, x, x, x, mask, 2)
    assert torch.isnan(ref_out[1]).all()                            # PyTorch's behaviour differs
    close(out[0, [0, 2]], ref_out[0, [0, 2]])
    out.sum().backward()
    assert torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in ours.parameters())


def test_gradients_match_nn_multihead_attention():
    theirs, ours = torch_pair(12, 4, seed=9, dtype=torch.float64)
    g = torch.Generator().manual_seed(9)
    query = torch.randn(2, 3, 12, generator=g, dtype=torch.float64)
    memory = torch.randn(2, 5, 12, generator=g, dtype=torch.float64)
    mask = torch.ones(3, 5, dtype=torch.bool).tril()
    out, _ = ours(query, memory, memory, mask=mask)
    ref_out, _ = theirs(query, memory, memory, attn_mask=~mask, need_weights=False)
    upstream = torch.randn(out.shape, generator=g, dtype=torch.float64)
    (out * upstream).sum().backward()
    (ref_out * upstream).sum().backward()
    ours_in = torch.cat([ours.q_proj.weight.grad, ours.k_proj.weight.grad, ours.v_proj.weight.grad])
    close(ours_in, theirs.in_proj_weight.grad, atol=1e-10, rtol=1e-10)
    ours_bias = torch.cat([ours.q_proj.bias.grad, ours.k_proj.bias.grad, ours.v_proj.bias.grad])
    close(ours_bias, theirs.in_proj_bias.grad, atol=1e-10, rtol=1e-10)
    close(ours.out_proj.weight.grad, theirs.out_proj.weight.grad, atol=1e-10, rtol=1e-10)


def test_dropout_only_in_training_mode():
    torch.manual_seed(0)
    m = ch.MultiHeadAttention(8, 2, dropout=0.5)
    x = torch.randn(2, 6, 8)
    m.eval()
    with torch.no_grad():
        a, wa = m(x, x, x)
        b, _ = m(x, x, x)
    assert torch.equal(a, b)
    close(wa.sum(-1), torch.ones(2, 2, 6))
    m.train()
    with torch.no_grad():
        c, _ = m(x, x, x)
    assert not torch.allclose(a, c)


# ----------------------------------------------------------------------------- cost and masks
@pytest.mark.parametrize(("batch", "len_q", "len_k", "d_model", "num_heads"),
                         [(1, 1, 1, 4, 1), (2, 10, 15, 16, 4), (3, 7, 7, 24, 8), (1, 33, 5, 64, 64)])
def test_multiply_add_count_matches_flop_counter(batch, len_q, len_k, d_model, num_heads):
    query, memory = torch.randn(batch, len_q, d_model), torch.randn(batch, len_k, d_model)
    for module in (ch.MultiHeadAttention(d_model, num_heads),
                   nn.MultiheadAttention(d_model, num_heads, batch_first=True)):
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            module(query, memory, memory)
        assert counter.get_total_flops() == 2 * ch.mha_multiply_adds(batch, len_q, len_k, d_model, num_heads)


def test_to_torch_attn_mask():
    g = torch.Generator().manual_seed(1)
    for shape in [(4, 5), (2, 1, 1, 5), (2, 3, 4, 5), (2, 1, 4, 5), (1, 5)]:
        mask = torch.rand(shape, generator=g) < 0.5
        got = ch.to_torch_attn_mask(mask, 2, 3, 4, 5)
        assert got.shape == (6, 4, 5) and got.dtype == torch.bool
        full = mask.expand(2, 3, 4, 5)
        for b in range(2):
            for h in range(3):
                assert torch.equal(got[b * 3 + h], ~full[b, h])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int64, torch.uint8])
def test_non_boolean_masks_are_refused(dtype):
    """A float mask is added to the scores (0 = may attend): converting it to bool would invert it."""
    g = torch.Generator().manual_seed(12)
    q, k, v = (torch.randn(1, 2, 3, 4, generator=g) for _ in range(3))
    causal = torch.ones(3, 3, dtype=torch.bool).tril()
    additive = torch.zeros(3, 3).masked_fill(~causal, float("-inf"))
    assert torch.equal(additive.to(torch.bool), ~causal)               # why conversion is refused
    other = causal.to(dtype)
    with pytest.raises(TypeError, match="torch.bool"):
        ch.scaled_dot_product_attention(q, k, v, other)
    x = torch.randn(1, 3, 8, generator=g)
    with pytest.raises(TypeError, match="torch.bool"):
        ch.MultiHeadAttention(8, 2)(x, x, x, mask=other)
    with pytest.raises(TypeError, match="torch.bool"):
        ch.to_torch_attn_mask(other, 1, 2, 3, 3)
