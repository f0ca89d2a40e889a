"""models/attention.py: the book's equations equal torch's kernels; masks, windows and positions behave."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from leedl_cli.models.attention import (
    DecoderBlock,
    MultiHeadAttention,
    PositionalEncoding,
    TransformerEncoder,
    attention,
    causal_mask,
    combine_masks,
    window_mask,
)


def _qkv(b=2, h=3, n=7, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, h, n, d, generator=g) for _ in range(3)]


@pytest.mark.parametrize("mask", ["none", "causal", "window", "padding"])
def test_explicit_equations_equal_scaled_dot_product_attention(mask):
    q, k, v = _qkv()
    pad = torch.zeros(2, 7, dtype=torch.bool)
    pad[1, 5:] = True
    allowed = combine_masks(7, 7, key_padding_mask=pad if mask == "padding" else None, causal=mask == "causal",
                            window=2 if mask == "window" else None)
    slow, weights = attention(q, k, v, allowed, need_weights=True)
    fast, none = attention(q, k, v, allowed, need_weights=False)
    assert none is None
    torch.testing.assert_close(slow, fast, atol=1e-5, rtol=1e-5)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
    torch.testing.assert_close(slow, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 7))           # alpha' sums to 1 over j
    if allowed is not None:
        assert (weights.masked_select(~allowed.expand_as(weights)) == 0).all()


@pytest.mark.parametrize("need_weights", [True, False])
def test_multi_head_equals_nn_multiheadattention_with_the_same_weights(need_weights):
    torch.manual_seed(0)
    d, h = 16, 4
    ours = MultiHeadAttention(d, h).eval()
    ref = nn.MultiheadAttention(d, h, batch_first=True).eval()
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([ours.w_q.weight, ours.w_k.weight, ours.w_v.weight]))
        ref.in_proj_bias.copy_(torch.cat([ours.w_q.bias, ours.w_k.bias, ours.w_v.bias]))
        ref.out_proj.weight.copy_(ours.w_o.weight)
        ref.out_proj.bias.copy_(ours.w_o.bias)
    x = torch.randn(3, 9, d)
    pad = torch.zeros(3, 9, dtype=torch.bool)
    pad[2, 6:] = True
    out, w = ours(x, key_padding_mask=pad, causal=True, need_weights=need_weights)
    ref_out, ref_w = ref(x, x, x, key_padding_mask=pad, attn_mask=~causal_mask(9), average_attn_weights=False)
    torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=1e-5)
    if need_weights:
        torch.testing.assert_close(w, ref_w, atol=1e-5, rtol=1e-5)
    # cross-attention: queries of one sequence, keys/values of another
    mem = torch.randn(3, 5, d)
    out, _ = ours(x, mem, mem)
    ref_out, _ = ref(x, mem, mem)
    torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=1e-5)


def test_window_and_causal_masks_limit_what_each_position_sees():
    assert window_mask(5, window=1).int().tolist() == [[1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [0, 1, 1, 1, 0],
                                                       [0, 0, 1, 1, 1], [0, 0, 0, 1, 1]]
    assert causal_mask(3).int().tolist() == [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    torch.manual_seed(0)
    enc = TransformerEncoder(1, 16, 2, dropout=0.0).eval()
    x = torch.randn(1, 12, 16)
    y = x.clone()
    y[0, 9:] += 5.0                                  # change positions 9.. only
    for kwargs, unchanged in (({"window": 2}, 7), ({"causal": True}, 9)):
        a, _ = enc(x, **kwargs)
        b, _ = enc(y, **kwargs)
        torch.testing.assert_close(a[0, :unchanged], b[0, :unchanged])  # out of sight: no effect
        assert not torch.allclose(a[0, unchanged:], b[0, unchanged:])
    full_a, _ = enc(x)
    full_b, _ = enc(y)
    assert not torch.allclose(full_a[0, :7], full_b[0, :7])             # full attention sees everything


def test_padding_does_not_change_the_real_positions():
    torch.manual_seed(0)
    enc = TransformerEncoder(2, 16, 4, dropout=0.0).eval()
    x = torch.randn(1, 6, 16)
    padded = torch.cat([x, torch.randn(1, 4, 16)], dim=1)
    pad = torch.tensor([[False] * 6 + [True] * 4])
    a, _ = enc(x)
    b, weights = enc(padded, key_padding_mask=pad, need_weights=True)
    torch.testing.assert_close(a, b[:, :6], atol=1e-5, rtol=1e-5)
    assert weights[0][..., 6:].abs().max() == 0


def test_without_positions_self_attention_cannot_tell_word_order():
    torch.manual_seed(0)
    enc = TransformerEncoder(2, 16, 2, dropout=0.0).eval()
    x = torch.randn(1, 8, 16)
    perm = torch.randperm(8)
    for kind in ("none", "sinusoidal", "learned"):
        pe = PositionalEncoding(kind, 16, max_len=32)
        if kind == "learned":
            nn.init.normal_(pe.table)
        a, _ = enc(pe(x))
        b, _ = enc(pe(x[:, perm]))
        same = torch.allclose(a[:, perm], b, atol=1e-5)
        assert same == (kind == "none"), kind     # permutation-equivariant exactly when there are no positions


def test_decoder_block_is_causal_and_reads_the_memory():
    torch.manual_seed(0)
    block = DecoderBlock(16, 4, dropout=0.0).eval()
    x, mem = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    out, w = block(x, mem, need_weights=True)
    assert w["self"].shape == (2, 4, 5, 5) and w["cross"].shape == (2, 4, 5, 7)
    assert torch.triu(w["self"][0, 0], diagonal=1).abs().max() == 0
    y = x.clone()
    y[:, 3:] += 1.0
    out2, _ = block(y, mem)
    torch.testing.assert_close(out[:, :3], out2[:, :3])
    out3, _ = block(x, mem + 1.0)
    assert not torch.allclose(out, out3)
    mem_pad = torch.zeros(2, 7, dtype=torch.bool)
    mem_pad[:, 4:] = True
    a, _ = block(x, mem, memory_padding_mask=mem_pad)
    b, _ = block(x, mem[:, :4])
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("override,message", [
    (["task=pos_tagging", "model=self_attention", "model.window=-2"], "model.window=-2: expected"),
    (["task=pos_tagging", "model=self_attention", "model.num_heads=0"], "model.num_heads=0: expected"),
    (["task=pos_tagging", "model=self_attention", "model.num_heads=3"],
     "model.num_heads=3: d_model=128 is not divisible by num_heads"),
    (["task=pos_tagging", "model=self_attention", "model.dropout=2"], "model.dropout=2: expected"),
    (["task=pos_tagging", "model=window_mlp", "model.window=-1"], "model.window=-1: expected"),
    (["task=pos_tagging", "model=rnn", "model.cell=gru2"], "model.cell=gru2: expected one of lstm, gru"),
    (["task=sentiment", "model=self_attention", "model.pooling=sum"], "model.pooling=sum: expected one of none, mean"),
    (["task=lm_pretrain", "model.num_heads=5"], "model.num_heads=5: d_model=128 is not divisible by num_heads"),
    (["task=lm_pretrain", "task.data.block_size=1"], "task.data.block_size=1: expected"),
])
def test_attention_model_options_are_refused_before_the_run(compose_cfg, override, message):
    from leedl_cli.validate import problems

    found = problems(compose_cfg(override))
    assert any(message in p for p in found), found


def test_window_zero_and_null_are_accepted(compose_cfg):
    from leedl_cli.validate import problems

    for window in ("0", "null", "3"):
        assert problems(compose_cfg(["task=pos_tagging", "model=self_attention", f"model.window={window}"])) == []
