"""Check chapter 3's from-scratch implementations against PyTorch and direct formulas.

The chapter defines (cells tagged ``implementation``): ``scaled_dot_product_attention`` (with an
optional ``dropout_p``), ``SelfAttention`` (with attention dropout), ``causal_mask``, ``padding_mask``
and ``sinusoidal_positional_encoding``.
References: ``torch.nn.functional.scaled_dot_product_attention``, ``nn.MultiheadAttention`` with one
head, and the formulas written out independently here (float64).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from book_loader import load_chapter
from torch import nn

ch = load_chapter("ch03_self_attention")


def reference_attention(q, k, v, mask=None):
    """Direct formula in float64: (output, weights); rows with no allowed key are zero."""
    scores = q.double() @ k.double().transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    if mask is not None:
        weights = torch.where(mask.any(dim=-1, keepdim=True), weights, 0.0)
    return weights @ v.double(), weights


def pytorch_attention(q, k, v, mask=None):
    """PyTorch's fused function, with rows that have no allowed key set to zero explicitly."""
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    if mask is not None:
        out = torch.where(mask.any(dim=-1, keepdim=True), out, 0.0)
    return out


def close(got, expected, atol=1e-5, rtol=1e-5):
    torch.testing.assert_close(got.double(), expected.double(), atol=atol, rtol=rtol)


# ----------------------------------------------------------------------------- attention
SHAPES = [  # (leading dims, len_q, len_k, d_k, d_v)
    ((), 1, 1, 1, 1),
    ((), 4, 6, 3, 2),
    ((1,), 5, 5, 8, 8),
    ((3,), 7, 2, 16, 5),
    ((2, 3), 5, 9, 4, 3),
    ((2, 1, 2), 3, 4, 2, 6),
]


@pytest.mark.parametrize(("lead", "len_q", "len_k", "d_k", "d_v"), SHAPES)
def test_attention_matches_pytorch_without_mask(lead, len_q, len_k, d_k, d_v):
    g = torch.Generator().manual_seed(len_q * 100 + len_k)
    q = torch.randn(*lead, len_q, d_k, generator=g)
    k = torch.randn(*lead, len_k, d_k, generator=g)
    v = torch.randn(*lead, len_k, d_v, generator=g)
    out, w = ch.scaled_dot_product_attention(q, k, v)
    assert out.shape == (*lead, len_q, d_v) and w.shape == (*lead, len_q, len_k)
    assert out.dtype == w.dtype == torch.float32
    ref_out, ref_w = reference_attention(q, k, v)
    close(w, ref_w)
    close(out, ref_out)
    close(out, F.scaled_dot_product_attention(q, k, v))
    close(w.sum(-1), torch.ones(*lead, len_q))


def random_masks(g, lead, len_q, len_k):
    batch = lead[0] if lead else 1
    full = torch.rand(*lead, len_q, len_k, generator=g) < 0.5
    full[..., 0, :] = False                                       # one query sees nothing
    pad = torch.arange(len_k) < torch.randint(0, len_k + 1, (batch,), generator=g)[:, None]
    masks = {"(len_q, len_k)": torch.rand(len_q, len_k, generator=g) < 0.6, "full shape": full,
             "all False": torch.zeros(len_q, len_k, dtype=torch.bool),
             "all True": torch.ones(len_q, len_k, dtype=torch.bool)}
    if lead:
        masks["key padding (batch, ..., 1, len_k)"] = pad.reshape(batch, *[1] * (len(lead) - 1), 1, len_k)
    return masks


@pytest.mark.parametrize(("lead", "len_q", "len_k", "d_k", "d_v"), SHAPES)
def test_attention_matches_pytorch_with_masks(lead, len_q, len_k, d_k, d_v):
    g = torch.Generator().manual_seed(7 + len_q + len_k)
    q = torch.randn(*lead, len_q, d_k, generator=g)
    k = torch.randn(*lead, len_k, d_k, generator=g)
    v = torch.randn(*lead, len_k, d_v, generator=g)
    for name, mask in random_masks(g, lead, len_q, len_k).items():
        out, w = ch.scaled_dot_product_attention(q, k, v, mask)
        assert torch.isfinite(out).all() and torch.isfinite(w).all(), name
        ref_out, ref_w = reference_attention(q, k, v, mask)
        close(w, ref_w)
        close(out, ref_out)
        close(out, pytorch_attention(q, k, v, mask))
        blocked = ~mask.expand_as(w)
        assert (w[blocked] == 0).all(), f"{name}: a blocked key got weight"
        empty = ~mask.any(-1).expand(w.shape[:-1])
        assert (w[empty] == 0).all() and (out[empty] == 0).all(), f"{name}: a row with no key is not zero"


def test_fully_masked_rows_are_zero_and_gradients_finite():
    g = torch.Generator().manual_seed(3)
    q = torch.randn(1, 4, 3, dtype=torch.float64, generator=g, requires_grad=True)
    k = torch.randn(1, 5, 3, dtype=torch.float64, generator=g, requires_grad=True)
    v = torch.randn(1, 5, 2, dtype=torch.float64, generator=g, requires_grad=True)
    mask = torch.rand(4, 5, generator=g) < 0.5
    mask[1] = False
    mask[2, 0] = True
    out, w = ch.scaled_dot_product_attention(q, k, v, mask)
    assert (out[:, 1] == 0).all() and (w[:, 1] == 0).all()
    assert torch.autograd.gradcheck(lambda a, b, c: ch.scaled_dot_product_attention(a, b, c, mask), (q, k, v))
    (out.sum() + w.sum()).backward()
    assert all(torch.isfinite(t.grad).all() for t in (q, k, v))


@pytest.mark.parametrize("scale", [1e2, 1e3])
def test_large_logits_stay_finite_and_exact(scale):
    g = torch.Generator().manual_seed(4)
    q = scale * torch.randn(3, 4, 8, dtype=torch.float64, generator=g)
    k = torch.randn(3, 5, 8, dtype=torch.float64, generator=g)
    v = torch.randn(3, 5, 2, dtype=torch.float64, generator=g)
    mask = torch.rand(4, 5, generator=g) < 0.7
    out, w = ch.scaled_dot_product_attention(q, k, v, mask)
    assert torch.isfinite(w).all()
    ref_out, ref_w = reference_attention(q, k, v, mask)
    close(w, ref_w, atol=1e-12, rtol=1e-10)
    close(out, ref_out, atol=1e-12, rtol=1e-10)


def test_float64_is_preserved():
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    out, w = ch.scaled_dot_product_attention(x, x, x, ch.causal_mask(3))
    assert out.dtype == w.dtype == torch.float64


# ----------------------------------------------------------------------------- masks
@pytest.mark.parametrize("n", [1, 2, 5, 16])
def test_causal_mask_is_lower_triangular_and_matches_is_causal(n):
    mask = ch.causal_mask(n)
    assert mask.dtype == torch.bool and mask.shape == (n, n)
    rows, cols = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    assert torch.equal(mask, cols <= rows)
    g = torch.Generator().manual_seed(n)
    q, k, v = (torch.randn(2, n, 4, generator=g) for _ in range(3))
    close(ch.scaled_dot_product_attention(q, k, v, mask)[0],
          F.scaled_dot_product_attention(q, k, v, is_causal=True))


@pytest.mark.parametrize(("lengths", "max_len"),
                         [([3, 1, 5], 5), ([0, 2], 3), ([4], 4), ([0], 1), ([2, 7, 1], 9)])
def test_padding_mask_marks_real_tokens(lengths, max_len):
    for as_tensor in (torch.tensor(lengths), torch.tensor(lengths, dtype=torch.int32)):
        mask = ch.padding_mask(as_tensor, max_len)
        assert mask.dtype == torch.bool and mask.shape == (len(lengths), max_len)
        expected = torch.tensor([[p < n for p in range(max_len)] for n in lengths])
        assert torch.equal(mask, expected)


def test_key_padding_mask_matches_multihead_attention():
    """One-head nn.MultiheadAttention (True = blocked) against SelfAttention with ~mask conversion."""
    torch.manual_seed(0)
    d = 6
    mha = nn.MultiheadAttention(d, num_heads=1, bias=False, batch_first=True)
    layer = ch.SelfAttention(d)
    with torch.no_grad():
        w_q, w_k, w_v = mha.in_proj_weight.chunk(3)
        layer.W_q.weight.copy_(w_q)
        layer.W_k.weight.copy_(w_k)
        layer.W_v.weight.copy_(w_v)
    x = torch.randn(3, 5, d)
    pad = ch.padding_mask(torch.tensor([5, 2, 4]), 5)
    expected_out, expected_w = mha(x, x, x, key_padding_mask=~pad, need_weights=True)
    out, w = layer(x, pad[:, None, :])
    close(w, expected_w)
    close(out @ mha.out_proj.weight.T, expected_out)


# ----------------------------------------------------------------------------- positions
def formula_pe(max_len, d_model):
    pe = torch.zeros(max_len, d_model, dtype=torch.float64)
    for j in range(d_model):
        angle = torch.arange(max_len, dtype=torch.float64) / 10000 ** (2 * (j // 2) / d_model)
        pe[:, j] = torch.sin(angle) if j % 2 == 0 else torch.cos(angle)
    return pe


@pytest.mark.parametrize(("max_len", "d_model"),
                         [(1, 1), (5, 1), (4, 2), (7, 5), (10, 3), (50, 16), (200, 64)])
def test_sinusoidal_encoding_matches_formula(max_len, d_model):
    pe = ch.sinusoidal_positional_encoding(max_len, d_model)
    assert pe.dtype == torch.float32 and pe.shape == (max_len, d_model)
    close(pe, formula_pe(max_len, d_model), atol=1e-6, rtol=0)


@pytest.mark.parametrize("k", [1, 3, 40])
def test_sinusoidal_offset_is_a_rotation(k):
    """PE[p + k] = M_k PE[p] with M_k block-diagonal 2x2 rotations, the same for every p."""
    d = 16
    pe = ch.sinusoidal_positional_encoding(100, d).double()
    omega = 10000 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    blocks = [torch.tensor([[math.cos(w * k), math.sin(w * k)], [-math.sin(w * k), math.cos(w * k)]])
              for w in omega.tolist()]
    m_k = torch.block_diag(*blocks).double()
    close(pe[:-k] @ m_k.T, pe[k:], atol=1e-6, rtol=0)


# ----------------------------------------------------------------------------- module
@pytest.mark.parametrize(("d_model", "d_k", "d_v"), [(8, None, None), (6, 4, 5), (5, 3, None), (4, None, 2)])
def test_self_attention_matches_pytorch(d_model, d_k, d_v):
    torch.manual_seed(d_model)
    layer = ch.SelfAttention(d_model, d_k, d_v)
    dk, dv = d_k or d_model, d_v or d_model
    assert layer.W_q.weight.shape == (dk, d_model) and layer.W_v.weight.shape == (dv, d_model)
    assert all(getattr(layer, n).bias is None for n in ("W_q", "W_k", "W_v"))
    assert sum(p.numel() for p in layer.parameters()) == d_model * (2 * dk + dv)
    x = torch.randn(3, 6, d_model)
    wq, wk, wv = layer.W_q.weight, layer.W_k.weight, layer.W_v.weight
    for mask in (None, ch.causal_mask(6), ch.padding_mask(torch.tensor([6, 1, 3]), 6)[:, None, :]):
        out, w = layer(x, mask)
        assert out.shape == (3, 6, dv) and w.shape == (3, 6, 6)
        ref_out, ref_w = reference_attention(x @ wq.T, x @ wk.T, x @ wv.T, mask)
        close(w, ref_w)
        close(out, ref_out)
        close(out, F.scaled_dot_product_attention(x @ wq.T, x @ wk.T, x @ wv.T, attn_mask=mask))


def test_self_attention_gradients_match_formula():
    torch.manual_seed(1)
    layer = ch.SelfAttention(5, d_k=3, d_v=4).double()
    x = torch.randn(2, 4, 5, dtype=torch.float64, requires_grad=True)
    mask = ch.causal_mask(4)
    out, w = layer(x, mask)
    (out.pow(2).sum() + (w * torch.arange(4.0)).sum()).backward()

    params = [getattr(layer, n).weight.detach().clone().requires_grad_(True) for n in ("W_q", "W_k", "W_v")]
    x_ref = x.detach().clone().requires_grad_(True)
    ref_out, ref_w = reference_attention(x_ref @ params[0].T, x_ref @ params[1].T, x_ref @ params[2].T, mask)
    (ref_out.pow(2).sum() + (ref_w * torch.arange(4.0)).sum()).backward()
    for name, p in zip(("W_q", "W_k", "W_v"), params, strict=True):
        close(getattr(layer, name).weight.grad, p.grad, atol=1e-10, rtol=1e-8)
    close(x.grad, x_ref.grad, atol=1e-10, rtol=1e-8)


def test_self_attention_is_permutation_equivariant_without_mask():
    torch.manual_seed(2)
    layer = ch.SelfAttention(8).double()
    x = torch.randn(2, 7, 8, dtype=torch.float64)
    perm = torch.randperm(7)
    out, w = layer(x)
    out_p, w_p = layer(x[:, perm])
    close(out_p, out[:, perm], atol=1e-12, rtol=1e-10)
    close(w_p, w[:, perm][:, :, perm], atol=1e-12, rtol=1e-10)


# ----------------------------------------------------------------------------- dropout
def test_dropout_p_zero_is_the_default_and_drops_nothing():
    g = torch.Generator().manual_seed(8)
    q, k, v = (torch.randn(2, 5, 4, generator=g) for _ in range(3))
    out, w = ch.scaled_dot_product_attention(q, k, v, dropout_p=0.0)
    ref_out, ref_w = reference_attention(q, k, v)
    close(w, ref_w)
    close(out, ref_out)


def test_dropout_p_drops_and_rescales_the_weights_and_the_output_uses_them():
    g = torch.Generator().manual_seed(9)
    q, k, v = (torch.randn(3, 6, 4, generator=g) for _ in range(3))
    mask = ch.causal_mask(6)
    torch.manual_seed(0)
    out, w = ch.scaled_dot_product_attention(q, k, v, mask, dropout_p=0.5)
    _, ref_w = reference_attention(q, k, v, mask)
    kept = w != 0
    assert 0 < (~kept & mask).sum() < mask.expand_as(w).sum(), "some allowed weights are dropped, not all"
    close(w[kept], ref_w[kept] / 0.5)
    close(out, w @ v)
    assert (w[~mask.expand_as(w)] == 0).all()


def test_self_attention_dropout_only_in_training_mode():
    torch.manual_seed(3)
    layer = ch.SelfAttention(6, dropout=0.3)
    x = torch.randn(4, 5, 6)
    layer.eval()
    out_eval, w_eval = layer(x)
    wq, wk, wv = layer.W_q.weight, layer.W_k.weight, layer.W_v.weight
    ref_out, ref_w = reference_attention(x @ wq.T, x @ wk.T, x @ wv.T)
    close(w_eval, ref_w)
    close(out_eval, ref_out)
    layer.train()
    out_train, w_train = layer(x)
    kept = w_train != 0
    assert (~kept).any() and kept.any()
    close(w_train[kept], w_eval[kept] / 0.7)
    close(out_train, w_train @ (x @ layer.W_v.weight.T))
    assert sum(p.numel() for p in layer.parameters()) == 3 * 36, "dropout adds no parameters"


def test_float16_masking_works():
    g = torch.Generator().manual_seed(10)
    q, k, v = (torch.randn(2, 4, 8, generator=g).half() for _ in range(3))
    mask = torch.rand(4, 4, generator=g) < 0.5
    mask[0] = False
    out, w = ch.scaled_dot_product_attention(q, k, v, mask)
    assert out.dtype == w.dtype == torch.float16
    assert torch.isfinite(out).all() and (out[:, 0] == 0).all()
    ref_out, ref_w = reference_attention(q, k, v, mask)
    close(w, ref_w, atol=2e-3, rtol=2e-3)
