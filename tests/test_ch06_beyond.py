"""Check chapter 6's from-scratch implementations against PyTorch and direct formulas.

The chapter defines (cells tagged ``implementation``): ``naive_attention``, ``online_softmax``,
``tiled_attention``, ``KVCache``, ``decode_step``, ``CachedSelfAttention``, ``TinyDecoder``,
``PreallocatedKVCache``, ``grouped_query_attention``, ``sliding_window_mask``, ``local_attention``,
``elu_feature_map`` and ``linear_attention``. References:
``torch.nn.functional.scaled_dot_product_attention`` (with ``is_causal``, boolean masks and
``enable_gqa``), ``torch.softmax``, ``nn.MultiheadAttention``, and formulas written out
independently here.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from book_loader import load_chapter

ch = load_chapter("ch06_beyond")


def close(got, expected, atol=1e-5, rtol=1e-5):
    torch.testing.assert_close(got.double(), expected.double(), atol=atol, rtol=rtol)


def tolerance(dtype):
    return {"atol": 1e-5, "rtol": 1e-5} if dtype == torch.float32 else {"atol": 1e-12, "rtol": 1e-10}


def random_qkv(lead, len_q, len_k, d, d_v, seed, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*lead, len_q, d, generator=g, dtype=dtype),
            torch.randn(*lead, len_k, d, generator=g, dtype=dtype),
            torch.randn(*lead, len_k, d_v, generator=g, dtype=dtype))


def pytorch_masked(q, k, v, mask):
    """PyTorch's attention, with rows that have no allowed key set to zero explicitly."""
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return torch.where(mask.any(dim=-1, keepdim=True), out, 0.0)


# ----------------------------------------------------------------------------- online softmax
@pytest.mark.parametrize("x", [
    [0.5, 1.0, -2.0, 3.0, 2.5, 4.0],
    [1e4, 0.0, 1e4 - 1, -5e3],
    [float("-inf"), 2.0, float("-inf"), 1.0],
    [-7.0],
    list(range(20)),
    list(range(20, 0, -1)),
])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_online_softmax_matches_torch(x, dtype):
    x = torch.tensor(x, dtype=dtype)
    got = ch.online_softmax(x)
    assert got.dtype == dtype and got.shape == x.shape
    close(got, torch.softmax(x, dim=0), **tolerance(dtype))


# ----------------------------------------------------------------------------- naive attention
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_naive_attention_matches_pytorch(dtype):
    q, k, v = random_qkv((2, 3), 5, 7, 4, 6, seed=0, dtype=dtype)
    close(ch.naive_attention(q, k, v), F.scaled_dot_product_attention(q, k, v), **tolerance(dtype))
    mask = torch.rand(5, 7, generator=torch.Generator().manual_seed(1)) < 0.5
    mask[2] = False
    out = ch.naive_attention(q, k, v, mask)
    assert torch.isfinite(out).all() and (out[..., 2, :] == 0).all()
    close(out, pytorch_masked(q, k, v, mask), **tolerance(dtype))


# ----------------------------------------------------------------------------- tiled attention
TILED_SHAPES = [  # (lead, len_q, len_k, d, d_v)
    ((1, 1), 1, 1, 1, 1),
    ((2, 3), 5, 7, 4, 3),
    ((1, 2), 16, 16, 8, 8),
    ((3, 1), 9, 13, 16, 2),
    ((2, 2), 1, 10, 4, 5),
]
BLOCKS = [1, 2, 3, 4, 5, 7, 16, 100]


@pytest.mark.parametrize(("lead", "len_q", "len_k", "d", "d_v"), TILED_SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tiled_attention_matches_pytorch(lead, len_q, len_k, d, d_v, dtype):
    q, k, v = random_qkv(lead, len_q, len_k, d, d_v, seed=len_q * 31 + len_k, dtype=dtype)
    expected = F.scaled_dot_product_attention(q, k, v)
    for block in BLOCKS:
        got = ch.tiled_attention(q, k, v, block)
        assert got.shape == (*lead, len_q, d_v) and got.dtype == dtype
        close(got, expected, **tolerance(dtype))


@pytest.mark.parametrize("n", [1, 2, 6, 11, 32])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tiled_attention_causal_matches_is_causal(n, dtype):
    q, k, v = random_qkv((2, 3), n, n, 8, 5, seed=n, dtype=dtype)
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    for block in BLOCKS:
        close(ch.tiled_attention(q, k, v, block, causal=True), expected, **tolerance(dtype))


def test_tiled_attention_causal_with_len_q_not_len_k_is_top_left_aligned():
    q, k, v = random_qkv((1, 2), 4, 9, 4, 3, seed=5)
    for block in (1, 4, 9):
        close(ch.tiled_attention(q, k, v, block, causal=True),
              F.scaled_dot_product_attention(q, k, v, is_causal=True))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tiled_attention_with_masks_and_empty_rows(dtype):
    q, k, v = random_qkv((2, 3), 6, 10, 4, 3, seed=7, dtype=dtype)
    g = torch.Generator().manual_seed(8)
    full = torch.rand(2, 3, 6, 10, generator=g) < 0.4
    full[:, :, 0] = False                                  # query 0 sees nothing
    masks = {"(len_q, len_k)": torch.rand(6, 10, generator=g) < 0.5, "full shape": full,
             "key padding (batch, 1, 1, len_k)":
                 (torch.arange(10) < torch.tensor([4, 10])[:, None])[:, None, None, :],
             "all False": torch.zeros(6, 10, dtype=torch.bool)}
    for name, mask in masks.items():
        expected = pytorch_masked(q, k, v, mask)
        for block in (1, 3, 4, 10, 64):
            got = ch.tiled_attention(q, k, v, block, mask=mask)
            assert torch.isfinite(got).all(), name
            close(got, expected, **tolerance(dtype))
        empty = ~torch.broadcast_to(mask, (2, 3, 6, 10)).any(-1)
        assert (got[empty] == 0).all(), f"{name}: a row with no key is not zero"


@pytest.mark.parametrize("scale", [1e2, 1e3])
def test_tiled_attention_large_logits(scale):
    q, k, v = random_qkv((2, 2), 7, 11, 8, 3, seed=9, dtype=torch.float64)
    q = q * scale
    for causal in (False, True):
        expected = F.scaled_dot_product_attention(q, k[..., :7, :], v[..., :7, :], is_causal=True) if causal \
            else F.scaled_dot_product_attention(q, k, v)
        for block in (1, 3, 7, 11):
            got = ch.tiled_attention(q, k[..., :7, :], v[..., :7, :], block, causal=True) if causal \
                else ch.tiled_attention(q, k, v, block)
            assert torch.isfinite(got).all()
            close(got, expected, atol=1e-10, rtol=1e-8)


def test_tiled_attention_never_forms_the_full_score_matrix():
    """Record every tensor the function creates: none may hold len_q * len_k scores."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Largest(TorchDispatchMode):
        largest = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in out if isinstance(out, (tuple, list)) else [out]:
                if isinstance(t, torch.Tensor) and t.dtype.is_floating_point:
                    self.largest = max(self.largest, t.numel())
            return out

    n, block = 256, 16
    q, k, v = random_qkv((1, 1), n, n, 8, 8, seed=10)
    with Largest() as meter:
        ch.tiled_attention(q, k, v, block, causal=True)
    assert meter.largest <= n * block, f"a tensor of {meter.largest} numbers; one block has {n * block}"


def test_tiled_attention_gradients_match_pytorch():
    q, k, v = (t.requires_grad_(True) for t in random_qkv((1, 2), 5, 5, 3, 2, seed=11, dtype=torch.float64))
    assert torch.autograd.gradcheck(lambda a, b, c: ch.tiled_attention(a, b, c, 2, causal=True), (q, k, v))


# ----------------------------------------------------------------------------- KV cache
def test_kv_cache_appends_along_length():
    g = torch.Generator().manual_seed(12)
    cache = ch.KVCache()
    assert len(cache) == 0
    chunks = [(torch.randn(2, 3, t, 4, generator=g), torch.randn(2, 3, t, 5, generator=g))
              for t in (3, 1, 1, 4)]
    for i, (k, v) in enumerate(chunks):
        k_all, v_all = cache.append(k, v)
        assert torch.equal(k_all, torch.cat([c[0] for c in chunks[:i + 1]], dim=2))
        assert torch.equal(v_all, torch.cat([c[1] for c in chunks[:i + 1]], dim=2))
    assert len(cache) == 9
    assert cache.nbytes() == 2 * 3 * 9 * (4 + 5) * 4


@pytest.mark.parametrize(("lead", "n", "d", "d_v", "prompt"), [((1, 1), 1, 2, 3, 0), ((2, 3), 12, 8, 5, 0),
                                                             ((1, 4), 10, 4, 4, 6), ((3, 2), 7, 16, 2, 1)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_decode_steps_equal_full_causal_attention(lead, n, d, d_v, prompt, dtype):
    q, k, v = random_qkv(lead, n, n, d, d_v, seed=n + prompt, dtype=dtype)
    cache = ch.KVCache()
    if prompt:
        cache.append(k[..., :prompt, :], v[..., :prompt, :])
    rows = [ch.decode_step(q[..., t:t + 1, :], k[..., t:t + 1, :], v[..., t:t + 1, :], cache)
            for t in range(prompt, n)]
    assert len(cache) == n
    close(torch.cat(rows, dim=-2), F.scaled_dot_product_attention(q, k, v, is_causal=True)[..., prompt:, :],
          **tolerance(dtype))


@pytest.mark.parametrize("cache_type", ["KVCache", "PreallocatedKVCache"])
def test_caches_return_everything_appended(cache_type):
    g = torch.Generator().manual_seed(14)
    cache = ch.KVCache() if cache_type == "KVCache" else ch.PreallocatedKVCache(max_len=12)
    chunks = [(torch.randn(2, 3, t, 4, generator=g), torch.randn(2, 3, t, 5, generator=g))
              for t in (4, 1, 1, 6)]
    for i, (k, v) in enumerate(chunks):
        k_all, v_all = cache.append(k, v)
        assert torch.equal(k_all, torch.cat([c[0] for c in chunks[:i + 1]], dim=2))
        assert torch.equal(v_all, torch.cat([c[1] for c in chunks[:i + 1]], dim=2))
    assert len(cache) == 12


def test_preallocated_cache_refuses_to_overflow_and_keeps_its_buffers():
    cache = ch.PreallocatedKVCache(max_len=3)
    k = torch.randn(1, 2, 2, 4)
    cache.append(k, k)
    buffer = cache.k.untyped_storage().data_ptr()
    cache.append(k[..., :1, :], k[..., :1, :])
    assert cache.k.untyped_storage().data_ptr() == buffer, "the preallocated cache was reallocated"
    with pytest.raises(ValueError, match="at most 3"):
        cache.append(k[..., :1, :], k[..., :1, :])


def test_cached_self_attention_matches_multihead_attention():
    """Without a cache, CachedSelfAttention is causal nn.MultiheadAttention (without biases)."""
    torch.manual_seed(15)
    ours = ch.CachedSelfAttention(d_model=16, heads=4)
    theirs = torch.nn.MultiheadAttention(16, 4, bias=False, batch_first=True)
    with torch.no_grad():
        theirs.in_proj_weight.copy_(ours.qkv.weight)
        theirs.out_proj.weight.copy_(ours.out.weight)
    x = torch.randn(2, 7, 16)
    blocked = ~torch.ones(7, 7, dtype=torch.bool).tril()              # nn.MultiheadAttention: True = blocked
    expected, _ = theirs(x, x, x, attn_mask=blocked, need_weights=False)
    close(ours(x), expected)
    assert ours.weights.shape == (2, 4, 7, 7)
    close(ours.weights.sum(-1), torch.ones(2, 4, 7))


@pytest.mark.parametrize("ffn", [True, False])
def test_tiny_decoder_prefill_then_decode_equals_the_full_forward(ffn):
    torch.manual_seed(16)
    model = ch.TinyDecoder(vocab=11, d_model=16, heads=2, layers=3, max_len=20, ffn=ffn).eval()
    tokens = torch.randint(11, (2, 12))
    with torch.no_grad():
        full = model(tokens)
        caches = [ch.KVCache() for _ in range(3)]
        stepped = [model(tokens[:, :5], caches)]                       # prefill 5 positions
        stepped += [model(tokens[:, t:t + 1], caches) for t in range(5, 12)]
    close(torch.cat(stepped, dim=1), full)
    assert all(len(c) == 12 for c in caches)


def test_cached_self_attention_refuses_a_chunk_after_the_prefill():
    layer = ch.CachedSelfAttention(d_model=8, heads=2)
    cache = ch.KVCache()
    layer(torch.randn(1, 3, 8), cache)
    with pytest.raises(ValueError, match="one token at a time"):
        layer(torch.randn(1, 2, 8), cache)


def test_attention_patch_replaces_the_heads_output():
    torch.manual_seed(17)
    layer = ch.CachedSelfAttention(d_model=8, heads=2)
    x = torch.randn(1, 5, 8)
    layer.patch = torch.zeros_like
    close(layer(x), torch.zeros(1, 5, 8))


# ----------------------------------------------------------------------------- grouped-query attention
@pytest.mark.parametrize(("heads", "kv_heads"), [(4, 4), (4, 2), (6, 3), (8, 1)])
@pytest.mark.parametrize("causal", [False, True])
def test_grouped_query_attention_matches_enable_gqa(heads, kv_heads, causal):
    g = torch.Generator().manual_seed(heads * 10 + kv_heads)
    q = torch.randn(2, heads, 6, 4, generator=g)
    k, v = torch.randn(2, kv_heads, 6, 4, generator=g), torch.randn(2, kv_heads, 6, 3, generator=g)
    close(ch.grouped_query_attention(q, k, v, causal=causal),
          F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True))


def test_grouped_query_attention_with_len_q_not_len_k_and_no_copy_of_the_keys():
    g = torch.Generator().manual_seed(18)
    q = torch.randn(1, 6, 3, 4, generator=g)
    k, v = torch.randn(1, 2, 8, 4, generator=g), torch.randn(1, 2, 8, 5, generator=g)
    close(ch.grouped_query_attention(q, k, v), F.scaled_dot_product_attention(q, k, v, enable_gqa=True))
    from torch.utils._python_dispatch import TorchDispatchMode

    class Shapes(TorchDispatchMode):
        seen: list = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in out if isinstance(out, (tuple, list)) else [out]:
                if isinstance(t, torch.Tensor):
                    self.seen.append(t.numel())
            return out

    with Shapes() as meter:
        ch.grouped_query_attention(q, k, v)
    assert k.numel() * 3 not in meter.seen, "the keys were copied once per query head"


# ----------------------------------------------------------------------------- local and linear
@pytest.mark.parametrize(("n", "window"), [(1, 1), (5, 1), (6, 3), (7, 7), (10, 20), (33, 4)])
def test_sliding_window_mask_formula(n, window):
    mask = ch.sliding_window_mask(n, window)
    assert mask.dtype == torch.bool and mask.shape == (n, n)
    expected = torch.tensor([[0 <= i - j < window for j in range(n)] for i in range(n)]).reshape(n, n)
    assert torch.equal(mask, expected)


@pytest.mark.parametrize(("n", "window"), [(1, 1), (5, 1), (17, 4), (16, 4), (30, 7), (9, 50)])
def test_local_attention_equals_masked_attention(n, window):
    q, k, v = random_qkv((2, 3), n, n, 8, 5, seed=n * window)
    mask = ch.sliding_window_mask(n, window)
    close(ch.local_attention(q, k, v, window), F.scaled_dot_product_attention(q, k, v, attn_mask=mask))


def linear_reference(q, k, v, causal):
    """Linear attention written as an explicit double loop over (i, j), float64."""
    phi_q, phi_k = F.elu(q.double()) + 1, F.elu(k.double()) + 1
    n_q, n_k = q.shape[-2], k.shape[-2]
    out = torch.zeros(*q.shape[:-1], v.shape[-1], dtype=torch.float64)
    for i in range(n_q):
        num = torch.zeros(*q.shape[:-2], v.shape[-1], dtype=torch.float64)
        den = torch.zeros(*q.shape[:-2], 1, dtype=torch.float64)
        for j in range(i + 1 if causal else n_k):
            sim = (phi_q[..., i, :] * phi_k[..., j, :]).sum(-1, keepdim=True)
            num = num + sim * v.double()[..., j, :]
            den = den + sim
        out[..., i, :] = num / den
    return out


@pytest.mark.parametrize("causal", [False, True])
def test_linear_attention_matches_loop_formula(causal):
    q, k, v = random_qkv((2, 2), 6, 6, 4, 3, seed=13)
    close(ch.linear_attention(q, k, v, causal=causal), linear_reference(q, k, v, causal),
          atol=1e-5, rtol=1e-4)
    x = torch.linspace(-10, 10, 101, dtype=torch.float64)
    close(ch.elu_feature_map(x), torch.where(x > 0, x + 1, torch.exp(x)), atol=1e-12, rtol=1e-12)
