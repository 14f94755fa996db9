"""Check chapter 2's from-scratch implementations against PyTorch and direct formulas."""

from __future__ import annotations

import pytest
import torch
from book_loader import load_chapter
from torch.nn import functional as F

ch = load_chapter("ch02_rnn_attention")


def reference_mask(valid_lens, batch, len_q, len_k):
    """Boolean (batch, len_q, len_k) mask, True = may attend, built with explicit loops."""
    mask = torch.zeros(batch, len_q, len_k, dtype=torch.bool)
    for b in range(batch):
        for i in range(len_q):
            n = int(valid_lens[b]) if valid_lens.dim() == 1 else int(valid_lens[b, i])
            mask[b, i, :n] = True
    return mask


def reference_softmax(scores, mask):
    """Softmax over valid keys only, all-zero rows where nothing is valid (direct formula)."""
    scores = scores.masked_fill(~mask, float("-inf"))
    top = scores.max(dim=-1, keepdim=True).values                  # the largest VALID score
    exp = torch.exp(scores - torch.where(torch.isfinite(top), top, torch.zeros_like(top)))
    total = exp.sum(dim=-1, keepdim=True)
    return torch.where(total > 0, exp / total.clamp_min(1e-300), torch.zeros_like(exp))


def random_lens(gen, batch, len_q, len_k, per_query):
    shape = (batch, len_q) if per_query else (batch,)
    return torch.randint(0, len_k + 1, shape, generator=gen)


# --------------------------------------------------------------------------- masked_softmax

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("per_query", [False, True])
def test_masked_softmax_matches_direct_formula(dtype, per_query):
    gen = torch.Generator().manual_seed(0)
    for batch, len_q, len_k in [(3, 4, 5), (1, 1, 1), (2, 1, 7), (4, 6, 3)]:
        scores = (5 * torch.randn(batch, len_q, len_k, generator=gen)).to(dtype)
        lens = random_lens(gen, batch, len_q, len_k, per_query)
        got = ch.masked_softmax(scores, lens)
        expected = reference_softmax(scores, reference_mask(lens, batch, len_q, len_k))
        assert got.dtype == dtype and got.shape == scores.shape
        torch.testing.assert_close(got, expected)


def test_masked_softmax_none_is_plain_softmax():
    scores = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(ch.masked_softmax(scores, None), torch.softmax(scores, dim=-1))


def test_masked_softmax_empty_rows_are_zero_and_gradients_finite():
    scores = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(2), requires_grad=True)
    weights = ch.masked_softmax(scores, torch.tensor([0, 4]))
    assert torch.equal(weights[0], torch.zeros(3, 4))
    torch.testing.assert_close(weights[1].sum(-1), torch.ones(3))
    (weights * torch.arange(4.0)).sum().backward()
    assert torch.isfinite(scores.grad).all()


def test_masked_softmax_large_logits():
    scores = torch.tensor([[[1000.0, 999.0, -1000.0, 5000.0]]])
    got = ch.masked_softmax(scores, torch.tensor([3]))
    expected = torch.tensor([[[1 / (1 + torch.e**-1), 1 / (1 + torch.e), 0.0, 0.0]]])
    torch.testing.assert_close(got, expected)


# --------------------------------------------------------------------------- Luong attention

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_luong_dot_matches_scaled_dot_product_attention(dtype):
    gen = torch.Generator().manual_seed(3)
    for batch, len_q, len_k, d, d_v, per_query in [(3, 4, 6, 8, 5, False), (2, 1, 3, 4, 4, True),
                                                    (1, 5, 1, 3, 2, False), (4, 3, 5, 6, 7, True)]:
        q = torch.randn(batch, len_q, d, generator=gen, dtype=dtype)
        k = torch.randn(batch, len_k, d, generator=gen, dtype=dtype)
        v = torch.randn(batch, len_k, d_v, generator=gen, dtype=dtype)
        lens = random_lens(gen, batch, len_q, len_k, per_query)
        attention = ch.LuongAttention(d, d, "dot").to(dtype)
        got = attention(q, k, v, lens)
        mask = reference_mask(lens, batch, len_q, len_k)
        expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=1.0)
        torch.testing.assert_close(got, expected)
        expected_weights = reference_softmax(q @ k.transpose(1, 2), mask)
        torch.testing.assert_close(attention.attention_weights, expected_weights)


def test_luong_general_matches_sdpa_on_projected_keys():
    gen = torch.Generator().manual_seed(4)
    torch.manual_seed(4)
    attention = ch.LuongAttention(query_size=6, key_size=4, score="general")
    assert tuple(attention.W_a.weight.shape) == (6, 4) and attention.W_a.bias is None
    q, k, v = torch.randn(2, 3, 6, generator=gen), torch.randn(2, 5, 4, generator=gen), torch.randn(2, 5, 3)
    lens = torch.tensor([2, 5])
    got = attention(q, k, v, lens)
    projected = torch.einsum("bkd,qd->bkq", k, attention.W_a.weight)      # W_a k for every key
    expected = F.scaled_dot_product_attention(q, projected, v, attn_mask=reference_mask(lens, 2, 3, 5),
                                              scale=1.0)
    torch.testing.assert_close(got, expected)


def test_luong_rejects_bad_arguments():
    with pytest.raises(ValueError):
        ch.LuongAttention(4, 5, "dot")
    with pytest.raises(ValueError):
        ch.LuongAttention(4, 4, "concat")


# --------------------------------------------------------------------------- additive attention

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_additive_matches_loop_formula(dtype):
    gen = torch.Generator().manual_seed(5)
    torch.manual_seed(5)
    batch, len_q, len_k, d_q, d_k, h, d_v = 2, 3, 4, 5, 6, 7, 3
    attention = ch.AdditiveAttention(d_q, d_k, h).to(dtype)
    q = torch.randn(batch, len_q, d_q, generator=gen, dtype=dtype)
    k = torch.randn(batch, len_k, d_k, generator=gen, dtype=dtype)
    v = torch.randn(batch, len_k, d_v, generator=gen, dtype=dtype)
    lens = torch.tensor([[1, 4, 0], [2, 2, 3]])
    got = attention(q, k, v, lens)
    W_q, W_k, w_v = attention.W_q.weight, attention.W_k.weight, attention.w_v.weight[0]
    scores = torch.empty(batch, len_q, len_k, dtype=dtype)
    for b in range(batch):
        for i in range(len_q):
            for j in range(len_k):
                scores[b, i, j] = w_v @ torch.tanh(W_q @ q[b, i] + W_k @ k[b, j])
    weights = reference_softmax(scores, reference_mask(lens, batch, len_q, len_k))
    assert got.dtype == dtype
    torch.testing.assert_close(attention.attention_weights, weights)
    torch.testing.assert_close(got, weights @ v)


def test_additive_gradients_reach_every_parameter():
    torch.manual_seed(6)
    attention = ch.AdditiveAttention(4, 3, 5)
    out = attention(torch.randn(2, 2, 4), torch.randn(2, 3, 3), torch.randn(2, 3, 2), torch.tensor([0, 2]))
    out.pow(2).sum().backward()
    for name, p in attention.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


# --------------------------------------------------------------------------- encoder and decoder

def test_encoder_ignores_padding():
    torch.manual_seed(7)
    encoder = ch.Encoder(vocab_size=10, embed_size=4, num_hiddens=3, pad_id=0)
    src = torch.tensor([[3, 4, 5, 6, 7], [8, 9, 2, 0, 0]])
    lens = torch.tensor([5, 3])
    outputs, state = encoder(src, lens)
    assert outputs.shape == (2, 5, 6) and state.shape == (2, 6)
    assert torch.equal(outputs[1, 3:], torch.zeros(2, 6))
    alone, _ = encoder.rnn(encoder.embedding(src[1:, :3]))             # the short source without padding
    torch.testing.assert_close(outputs[1:, :3], alone)
    torch.testing.assert_close(state[1, :3], alone[0, -1, :3])         # forward GRU after the last token
    torch.testing.assert_close(state[1, 3:], alone[0, 0, 3:])          # backward GRU after the first token


@pytest.mark.parametrize("score", ["additive", "dot", "general"])
def test_seq2seq_output_does_not_depend_on_batch_padding(score):
    torch.manual_seed(8)
    attention = {"additive": ch.AdditiveAttention(8, 8, 8), "dot": ch.LuongAttention(8, 8, "dot"),
                 "general": ch.LuongAttention(8, 8, "general")}[score]
    model = ch.Seq2Seq(ch.Encoder(12, 5, 4), ch.Decoder(9, 5, 8, attention), bos_id=1)
    short = torch.tensor([[3, 4, 5]])
    batch = torch.tensor([[3, 4, 5, 0, 0, 0, 0], [6, 7, 8, 9, 10, 11, 3]])
    tgt_in = torch.tensor([[1, 4, 5, 6], [1, 7, 8, 2]])
    alone = model(short, torch.tensor([3]), tgt_in[:1])
    together = model(batch, torch.tensor([3, 7]), tgt_in)
    torch.testing.assert_close(together[:1], alone)
    tokens, weights = model.greedy_decode(batch, torch.tensor([3, 7]), num_steps=4)
    assert tokens.shape == (2, 4) and weights.shape == (2, 4, 7)
    assert torch.equal(weights[0, :, 3:], torch.zeros(4, 4))
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4))
    model.decoder.use_mask = False                                     # the unmasked model leaks into padding
    assert not torch.allclose(model(batch, torch.tensor([3, 7]), tgt_in)[:1], alone)


def test_seq2seq_without_attention_and_gradients():
    torch.manual_seed(9)
    model = ch.Seq2Seq(ch.Encoder(12, 5, 4), ch.Decoder(9, 5, 8, None), bos_id=1)
    src, lens = torch.tensor([[3, 4, 5, 0], [6, 7, 8, 9]]), torch.tensor([3, 4])
    logits = model(src, lens, torch.tensor([[1, 4, 5], [1, 7, 8]]))
    assert logits.shape == (2, 3, 9)
    tokens, weights = model.greedy_decode(src, lens, num_steps=3)
    assert tokens.shape == (2, 3) and weights is None
    F.cross_entropy(logits.reshape(-1, 9), torch.tensor([4, 5, 2, 7, 8, 2])).backward()
    for name, p in model.named_parameters():
        if name != "encoder.embedding.weight":
            assert p.grad is not None and torch.isfinite(p.grad).all(), name


# --------------------------------------------------------------------------- Luong-wired encoder-decoder

@pytest.mark.parametrize("with_attention", [True, False])
def test_luong_seq2seq_teacher_forcing_equals_step_by_step(with_attention):
    torch.manual_seed(10)
    attention = ch.LuongAttention(8, 8, "dot") if with_attention else None
    model = ch.LuongSeq2Seq(vocab_size=11, embed_size=5, num_hiddens=8, attention=attention)
    src = torch.tensor([[3, 4, 5, 6, 0], [7, 8, 9, 10, 3]])
    lens = torch.tensor([4, 5])
    tgt_in = torch.tensor([[1, 6, 5, 4, 3], [1, 3, 10, 9, 8]])
    together = model(src, lens, tgt_in)
    assert together.shape == (2, 5, 11)
    enc_outputs, enc_state = model.encoder(src, lens)
    state, steps = enc_state[None], []
    for t in range(5):                                                 # one token at a time, state carried
        logits, state = model.decode(tgt_in[:, t:t + 1], state, enc_outputs, enc_state, lens)
        steps.append(logits)
    torch.testing.assert_close(together, torch.cat(steps, dim=1))


def test_luong_seq2seq_does_not_depend_on_batch_padding():
    torch.manual_seed(11)
    model = ch.LuongSeq2Seq(12, 5, 8, ch.LuongAttention(8, 8, "dot"))
    alone = model(torch.tensor([[3, 4, 5]]), torch.tensor([3]), torch.tensor([[1, 5, 4, 3]]))
    batch = torch.tensor([[3, 4, 5, 0, 0, 0], [6, 7, 8, 9, 10, 11]])
    together = model(batch, torch.tensor([3, 6]), torch.tensor([[1, 5, 4, 3], [1, 11, 10, 9]]))
    torch.testing.assert_close(together[:1], alone)
    weights = model.attention.attention_weights
    assert torch.equal(weights[0, :, 3:], torch.zeros(4, 3))


def test_luong_seq2seq_greedy_decode_and_gradients():
    torch.manual_seed(12)
    model = ch.LuongSeq2Seq(9, 4, 6, ch.LuongAttention(6, 6, "dot"), pad_id=0, bos_id=1)
    src, lens = torch.tensor([[3, 4, 0], [5, 6, 7]]), torch.tensor([2, 3])
    tokens = model.greedy_decode(src, lens, num_steps=4)
    assert tokens.shape == (2, 4) and tokens.dtype == torch.long
    logits = model(src, lens, torch.tensor([[1, 4, 3], [1, 7, 6]]))
    F.cross_entropy(logits.reshape(-1, 9), torch.tensor([4, 3, 2, 7, 6, 5])).backward()
    for name, p in model.named_parameters():
        if name != "encoder.embedding.weight":
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
