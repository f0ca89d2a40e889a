"""Self-attention written from the book's equations (chapter 3), and the Transformer blocks built from it.

Section 3.2: for every input vector a^i,
    q^i = W^q a^i,   k^i = W^k a^i,   v^i = W^v a^i
    alpha_{i,j} = q^i . k^j / sqrt(d)          (dot-product relevance, scaled by the key dimension d)
    alpha'_{i,j} = softmax_j(alpha_{i,j})        (over the positions j that i may look at)
    b^i = sum_j alpha'_{i,j} v^j
Section 3.3 (multi-head): h heads, each with its own q/k/v of size d_model/h, outputs concatenated and mixed by
W^O. Section 3.4: positional encodings (`none`, `sinusoidal`, `learned`). Section 3.5: truncated self-attention,
each position only looks within +-w positions (`window=w`).

Masks (all boolean):
- `key_padding_mask` [B, Lk]: True at *padding* positions (not attended to) — nn.MultiheadAttention's convention;
- `attn_mask` [Lq, Lk], [B, Lq, Lk] or [B, H, Lq, Lk]: True where attending is *allowed* (torch's
  `scaled_dot_product_attention` convention);
- `causal=True`: position i sees only j <= i (the decoder's masked self-attention, chapter 4; GPT, chapter 5);
- `window=w`: position i sees only |i - j| <= w (truncated self-attention).
A query row with no allowed key attends uniformly instead of producing NaN.

`need_weights=True` computes the equations explicitly and returns alpha' [B, H, Lq, Lk] (for heat maps);
otherwise the same numbers come from `F.scaled_dot_product_attention` (torch's fused kernel), weights None.

Blocks: `EncoderBlock` (self-attention + feed-forward, each with a residual connection and layer norm, post-norm
as in the original Transformer or pre-norm with `norm_first=True`), `DecoderBlock` (masked self-attention, then
cross-attention whose queries come from the decoder and keys/values from the encoder's output `memory`, then
feed-forward), and the stacks `TransformerEncoder` / `TransformerDecoder`.
"""
from __future__ import annotations

import math
from typing import Annotated, Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn

from leedl_cli.contract import AtLeastOne, Probability
from leedl_cli.errors import LeedlError

Dropout = Annotated[float, Probability]      # the options of the models built on these blocks
Width = Annotated[int, AtLeastOne]

PositionalKind = Literal["none", "sinusoidal", "learned"]
POSITIONAL_ENCODINGS = get_args(PositionalKind)
ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU}
Activation = Literal[tuple(ACTIVATIONS)]      # the feed-forward's activation: one of ACTIVATIONS


def heads_problems(options: dict) -> list[str]:
    """Multi-head attention splits d_model into num_heads equal parts: the rule of every model built on it."""
    d_model, heads = options.get("d_model"), options.get("num_heads")
    if isinstance(d_model, int) and isinstance(heads, int) and heads >= 1 and d_model % heads:
        return [f"num_heads={heads}: d_model={d_model} is not divisible by num_heads"]
    return []


def causal_mask(lq: int, lk: int | None = None, device=None) -> torch.Tensor:
    """[Lq, Lk] True where j <= i (+ the offset when the keys are longer: cached past positions)."""
    lk = lq if lk is None else lk
    i = torch.arange(lq, device=device).unsqueeze(1) + (lk - lq)
    return torch.arange(lk, device=device).unsqueeze(0) <= i


def window_mask(lq: int, lk: int | None = None, window: int = 1, device=None) -> torch.Tensor:
    """[Lq, Lk] True where |i - j| <= window (truncated self-attention, section 3.5)."""
    lk = lq if lk is None else lk
    i = torch.arange(lq, device=device).unsqueeze(1) + (lk - lq)
    return (torch.arange(lk, device=device).unsqueeze(0) - i).abs() <= int(window)


def combine_masks(lq: int, lk: int, key_padding_mask=None, attn_mask=None, causal: bool = False,
                  window: int | None = None, device=None) -> torch.Tensor | None:
    """One boolean 'allowed' mask broadcastable to [B, H, Lq, Lk], or None when everything is allowed."""
    allowed = None

    def both(a, b):
        return b if a is None else a & b

    if causal:
        allowed = both(allowed, causal_mask(lq, lk, device))
    if window is not None:
        allowed = both(allowed, window_mask(lq, lk, window, device))
    if allowed is not None:
        allowed = allowed.view(1, 1, lq, lk)
    if attn_mask is not None:
        if attn_mask.dtype != torch.bool:
            raise LeedlError("attn_mask must be boolean (True = may attend)")
        m = attn_mask
        while m.dim() < 4:
            m = m.unsqueeze(0) if m.dim() == 2 else m.unsqueeze(1)
        allowed = both(allowed, m)
    if key_padding_mask is not None:
        allowed = both(allowed, ~key_padding_mask.bool().view(key_padding_mask.shape[0], 1, 1, lk))
    return allowed


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor | None = None,
              dropout: float = 0.0, need_weights: bool = False):
    """Scaled dot-product attention on [B, H, L, d] tensors: (b, alpha' or None).

    The explicit path is the book's equations; the fast path is torch's fused kernel (same numbers).
    """
    if allowed is not None:
        # a row with nothing allowed attends uniformly (no NaN): let it see every key
        allowed = allowed | ~allowed.any(dim=-1, keepdim=True)
    if not need_weights:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=dropout)
        return out, None
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])          # alpha_{i,j} = q^i . k^j / sqrt(d)
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    weights = scores.softmax(dim=-1)                                    # alpha'_{i,j}
    out = F.dropout(weights, dropout) @ v if dropout > 0 else weights @ v  # b^i = sum_j alpha'_{i,j} v^j
    return out, weights


class MultiHeadAttention(nn.Module):
    """Multi-head (self- or cross-) attention: W^q, W^k, W^v per head (one matrix for all heads), W^O.

    forward(query, key=None, value=None, ...) -> (output [B, Lq, d_model], weights [B, H, Lq, Lk] or None).
    key/value default to query (self-attention); give the encoder's output for cross-attention.
    """

    def __init__(self, d_model: int, num_heads: int = 1, dropout: float = 0.0, bias: bool = True) -> None:
        super().__init__()
        problems = heads_problems({"d_model": d_model, "num_heads": num_heads})
        if problems:
            raise LeedlError(f"model.{problems[0]}")
        self.d_model, self.num_heads, self.head_dim, self.dropout = d_model, num_heads, d_model // num_heads, dropout
        self.w_q = nn.Linear(d_model, d_model, bias=bias)
        self.w_k = nn.Linear(d_model, d_model, bias=bias)
        self.w_v = nn.Linear(d_model, d_model, bias=bias)
        self.w_o = nn.Linear(d_model, d_model, bias=bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, query, key=None, value=None, key_padding_mask=None, attn_mask=None, causal: bool = False,
                window: int | None = None, need_weights: bool = False):
        key = query if key is None else key
        value = key if value is None else value
        q, k, v = self._heads(self.w_q(query)), self._heads(self.w_k(key)), self._heads(self.w_v(value))
        allowed = combine_masks(q.shape[2], k.shape[2], key_padding_mask, attn_mask, causal, window, query.device)
        out, weights = attention(q, k, v, allowed, self.dropout if self.training else 0.0, need_weights)
        b, _, n, _ = out.shape
        return self.w_o(out.transpose(1, 2).reshape(b, n, self.d_model)), weights


SelfAttention = MultiHeadAttention   # the book's name; self-attention is key = value = query


def sinusoidal_table(max_len: int, d_model: int) -> torch.Tensor:
    """The Transformer's PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(...)."""
    pos = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    table = torch.zeros(max_len, d_model)
    table[:, 0::2] = torch.sin(pos * div)
    table[:, 1::2] = torch.cos(pos * div)[:, : d_model // 2]
    return table


class PositionalEncoding(nn.Module):
    """Adds position information e^i to a^i (section 3.4): `none`, `sinusoidal` (fixed) or `learned`."""

    def __init__(self, kind: PositionalKind, d_model: int, max_len: int = 1024) -> None:
        super().__init__()
        self.kind, self.max_len = kind, int(max_len)
        if kind == "sinusoidal":
            self.register_buffer("table", sinusoidal_table(self.max_len, d_model), persistent=False)
        elif kind == "learned":
            self.table = nn.Parameter(torch.randn(self.max_len, d_model) * 0.02)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        if self.kind == "none":
            return x
        n = x.shape[1]
        if offset + n > self.max_len:
            raise LeedlError(f"sequence of {offset + n} positions is longer than model.max_len={self.max_len}")
        return x + self.table[offset:offset + n].to(x.dtype)


class FeedForward(nn.Sequential):
    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0, activation: Activation = "gelu") -> None:
        super().__init__(nn.Linear(d_model, d_ff), ACTIVATIONS[activation](), nn.Dropout(dropout),
                         nn.Linear(d_ff, d_model))


class EncoderBlock(nn.Module):
    """Self-attention + feed-forward, each sub-layer with a residual connection and layer norm.

    Post-norm (`norm_first=False`, the original Transformer, Fig 4.x): x = LN(x + sublayer(x)).
    Pre-norm (`norm_first=True`, easier to train deep or without warmup): x = x + sublayer(LN(x)).
    With `causal=True` in forward this is also a decoder-only (GPT) block.
    """

    def __init__(self, d_model: int, num_heads: int = 4, d_ff: int | None = None, dropout: float = 0.1,
                 norm_first: bool = True, activation: Activation = "gelu") -> None:
        super().__init__()
        self.norm_first = norm_first
        self.attn = MultiHeadAttention(d_model, num_heads, dropout)
        self.ff = FeedForward(d_model, d_ff or 4 * d_model, dropout, activation)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, key_padding_mask=None, attn_mask=None, causal: bool = False, window: int | None = None,
                need_weights: bool = False):
        def sa(h):
            out, w = self.attn(h, key_padding_mask=key_padding_mask, attn_mask=attn_mask, causal=causal,
                               window=window, need_weights=need_weights)
            return self.drop(out), w

        if self.norm_first:
            out, w = sa(self.norm1(x))
            x = x + out
            x = x + self.drop(self.ff(self.norm2(x)))
        else:
            out, w = sa(x)
            x = self.norm1(x + out)
            x = self.norm2(x + self.drop(self.ff(x)))
        return x, w


class DecoderBlock(nn.Module):
    """Masked self-attention (causal), cross-attention to the encoder's `memory`, feed-forward (chapter 4).

    forward(x, memory, ...) -> (x, {"self": alpha' or None, "cross": alpha' or None}).
    """

    def __init__(self, d_model: int, num_heads: int = 4, d_ff: int | None = None, dropout: float = 0.1,
                 norm_first: bool = True, activation: Activation = "gelu") -> None:
        super().__init__()
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(d_model, num_heads, dropout)
        self.cross_attn = MultiHeadAttention(d_model, num_heads, dropout)
        self.ff = FeedForward(d_model, d_ff or 4 * d_model, dropout, activation)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d_model), nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, memory, self_padding_mask=None, memory_padding_mask=None, causal: bool = True,
                self_attn_mask=None, need_weights: bool = False):
        def sa(h):
            out, w = self.self_attn(h, key_padding_mask=self_padding_mask, attn_mask=self_attn_mask, causal=causal,
                                    need_weights=need_weights)
            return self.drop(out), w

        def ca(h):
            out, w = self.cross_attn(h, memory, memory, key_padding_mask=memory_padding_mask,
                                     need_weights=need_weights)
            return self.drop(out), w

        if self.norm_first:
            out, w_self = sa(self.norm1(x))
            x = x + out
            out, w_cross = ca(self.norm2(x))
            x = x + out
            x = x + self.drop(self.ff(self.norm3(x)))
        else:
            out, w_self = sa(x)
            x = self.norm1(x + out)
            out, w_cross = ca(x)
            x = self.norm2(x + out)
            x = self.norm3(x + self.drop(self.ff(x)))
        return x, {"self": w_self, "cross": w_cross}


class TransformerEncoder(nn.Module):
    """`num_layers` EncoderBlocks (+ a final layer norm with pre-norm). forward -> (x, [weights per layer])."""

    def __init__(self, num_layers: int, d_model: int, num_heads: int = 4, d_ff: int | None = None,
                 dropout: float = 0.1, norm_first: bool = True, activation: Activation = "gelu") -> None:
        super().__init__()
        self.layers = nn.ModuleList(EncoderBlock(d_model, num_heads, d_ff, dropout, norm_first, activation)
                                    for _ in range(num_layers))
        self.norm = nn.LayerNorm(d_model) if norm_first else nn.Identity()

    def forward(self, x, key_padding_mask=None, attn_mask=None, causal: bool = False, window: int | None = None,
                need_weights: bool = False):
        weights = []
        for layer in self.layers:
            x, w = layer(x, key_padding_mask, attn_mask, causal, window, need_weights)
            weights.append(w)
        return self.norm(x), weights


class TransformerDecoder(nn.Module):
    """`num_layers` DecoderBlocks (+ a final layer norm with pre-norm). forward -> (x, [weights per layer])."""

    def __init__(self, num_layers: int, d_model: int, num_heads: int = 4, d_ff: int | None = None,
                 dropout: float = 0.1, norm_first: bool = True, activation: Activation = "gelu") -> None:
        super().__init__()
        self.layers = nn.ModuleList(DecoderBlock(d_model, num_heads, d_ff, dropout, norm_first, activation)
                                    for _ in range(num_layers))
        self.norm = nn.LayerNorm(d_model) if norm_first else nn.Identity()

    def forward(self, x, memory, self_padding_mask=None, memory_padding_mask=None, causal: bool = True,
                need_weights: bool = False):
        weights = []
        for layer in self.layers:
            x, w = layer(x, memory, self_padding_mask, memory_padding_mask, causal, None, need_weights)
            weights.append(w)
        return self.norm(x), weights
