"""Encoder-decoder (sequence-to-sequence) models for translation (chapter 4).

- `Seq2SeqTransformer` (`model=transformer`): the Transformer of sections 4.4-4.6 built from
  `models/attention.py`: token embeddings scaled by sqrt(d_model) + sinusoidal positions, an encoder of
  self-attention blocks, a decoder of masked self-attention + cross-attention blocks, pre- or post-norm, dropout.
  `tie_embeddings`: the output layer reuses the target embedding matrix, and with a shared vocabulary the source
  embedding too (one matrix for all three).
- `RNNSeq2Seq` (`model=rnn_seq2seq`): the comparison the chapter makes: a bidirectional GRU encoder and a GRU
  decoder with (Luong, bilinear) attention over the encoder's states.

The vocabulary sizes, the pad id and whether the vocabulary is shared come from the data (`Provided`:
leedl_cli.data.parallel.ParallelTextSpec), the rest from conf/model. Both keep their constructor's arguments in
`self.config` (a trained model is rebuilt from them: leedl_cli.translate).
Both: `encode(src, src_padding_mask) -> memory`, `decode(tgt_in, memory, memory_padding_mask, src)` ->
(next-token scores [B, T, V], cross-attention per layer [B, H, T, S] or None), `forward(src, tgt_in)` = both, and
`step_fn(src)` -> a `step(tokens, rows)` for `leedl_cli.decoding.generate` (the encoder runs once; each step
re-runs the decoder on the prefix). Scores are logits, or with `copy=True` the log of the pointer-generator
mixture (both are valid input of cross-entropy and of `generate`).

Copy mechanism (section 4.8.1, `copy: true`; pointer-generator, See et al. 2017): p_gen = sigmoid(w . [h; c; e])
from the decoder state h, the attention context c and the input embedding e;
P(w) = p_gen P_vocab(w) + (1 - p_gen) sum_{i: src_i = w} alpha_i, with alpha the cross-attention (last layer,
mean of the heads). Source ids index the target vocabulary, so copying needs a shared vocabulary.
`exclude_from_vocab` (token ids) forbids tokens in P_vocab — what the unit test uses to show that the copy path
alone can produce a token the output layer never does.
"""
from __future__ import annotations

import math
from typing import Annotated

import torch
from torch import nn

from leedl_cli.contract import AtLeastOne, Probability, Provided
from leedl_cli.errors import LeedlError
from leedl_cli.models.attention import PositionalEncoding, TransformerDecoder, TransformerEncoder


class PointerGenerator(nn.Module):
    """Mixes the vocabulary distribution with the cross-attention over the source's token ids."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.gate = nn.Linear(3 * d_model, 1)

    def forward(self, logits, attention, context, state, embedded, src_ids) -> torch.Tensor:
        """logits [B, T, V], attention [B, T, S], context/state/embedded [B, T, d], src_ids [B, S] -> log P [B, T, V]."""
        p_gen = torch.sigmoid(self.gate(torch.cat([state, context, embedded], dim=-1)))      # [B, T, 1]
        p_vocab = logits.float().softmax(-1) * p_gen
        index = src_ids.unsqueeze(1).expand(-1, attention.shape[1], -1)                       # [B, T, S]
        mixed = p_vocab.scatter_add(-1, index, attention.float() * (1 - p_gen))
        return mixed.clamp_min(1e-12).log()


class Seq2SeqBase(nn.Module):
    """What both models share: vocabulary exclusion, the pointer-generator, `forward` and `step_fn`."""

    def _setup_common(self, d_model: int, tgt_vocab_size: int, src_vocab_size: int, pad_token_id: int, copy: bool,
                      shared_vocab: bool, exclude_from_vocab) -> None:
        if copy and (not shared_vocab or src_vocab_size != tgt_vocab_size):
            raise LeedlError("model.copy=true copies source token ids into the output: it needs "
                             "task.data.shared_vocab=true")
        self.pad_token_id, self.copy = int(pad_token_id), bool(copy)
        self.pointer = PointerGenerator(d_model) if copy else None
        mask = torch.zeros(tgt_vocab_size, dtype=torch.bool)
        for i in exclude_from_vocab or ():
            mask[int(i)] = True
        self.register_buffer("excluded", mask, persistent=False)

    def _scores(self, logits, cross, context, state, embedded, src):
        if self.excluded.any():
            logits = logits.masked_fill(self.excluded, float("-inf"))
        if self.pointer is None:
            return logits
        return self.pointer(logits, cross, context, state, embedded, src)

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor, need_weights: bool = False):
        """Teacher forcing: (scores [B, T, V], cross-attention per layer or None)."""
        src_mask = src == self.pad_token_id
        memory = self.encode(src, src_mask)
        return self.decode(tgt_in, memory, src_mask, src, need_weights=need_weights)

    def step_fn(self, src: torch.Tensor):
        """A `step(tokens, rows) -> scores of the next token` for `leedl_cli.decoding.generate`."""
        src_mask = src == self.pad_token_id
        memory = self.encode(src, src_mask)

        def step(tokens: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            scores, _ = self.decode(tokens, memory[rows], src_mask[rows], src[rows], last_only=True)
            return scores[:, -1]

        return step

    @torch.no_grad()
    def cross_attention(self, src: torch.Tensor, tgt_in: torch.Tensor) -> list[torch.Tensor]:
        """alpha' [B, H, T, S] of every decoder layer (evaluation mode), for heat maps."""
        was = self.training
        self.eval()
        _, weights = self.forward(src, tgt_in, need_weights=True)
        self.train(was)
        return weights


def init_embeddings(model: nn.Module, d_model: int, tie_embeddings: bool) -> None:
    """The Transformer's embeddings N(0, d_model^-1/2) with a zero pad row (shared ones once), the output layer
    tied to the target embedding when asked: `model` has src_embed, tgt_embed, output and pad_token_id."""
    for emb in {id(model.src_embed): model.src_embed, id(model.tgt_embed): model.tgt_embed}.values():
        nn.init.normal_(emb.weight, 0.0, d_model ** -0.5)
        with torch.no_grad():
            emb.weight[model.pad_token_id].zero_()
    if tie_embeddings:
        model.output.weight = model.tgt_embed.weight


class Seq2SeqTransformer(Seq2SeqBase):
    def __init__(self, src_vocab_size: Provided[int], tgt_vocab_size: Provided[int], pad_token_id: Provided[int] = 0,
                 shared_vocab: Provided[bool] = True, d_model: Annotated[int, AtLeastOne] = 256,
                 num_encoder_layers: Annotated[int, AtLeastOne] = 3, num_decoder_layers: Annotated[int, AtLeastOne] = 3,
                 num_heads: Annotated[int, AtLeastOne] = 4, d_ff: Annotated[int, AtLeastOne] = 1024,
                 dropout: Annotated[float, Probability] = 0.1, norm_first: bool = True, activation: str = "relu",
                 tie_embeddings: bool = True, max_len: Annotated[int, AtLeastOne] = 512, copy: bool = False,
                 exclude_from_vocab: list[int] | None = None) -> None:
        super().__init__()
        self.config = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        self._setup_common(d_model, tgt_vocab_size, src_vocab_size, pad_token_id, copy, shared_vocab,
                           exclude_from_vocab)
        self.d_model, self.scale = d_model, math.sqrt(d_model)
        self.tgt_embed = nn.Embedding(tgt_vocab_size, d_model, padding_idx=self.pad_token_id)
        share_src = tie_embeddings and shared_vocab and src_vocab_size == tgt_vocab_size
        self.src_embed = self.tgt_embed if share_src else nn.Embedding(src_vocab_size, d_model,
                                                                       padding_idx=self.pad_token_id)
        self.positions = PositionalEncoding("sinusoidal", d_model, max_len)
        self.drop = nn.Dropout(dropout)
        self.encoder = TransformerEncoder(num_encoder_layers, d_model, num_heads, d_ff, dropout, norm_first, activation)
        self.decoder = TransformerDecoder(num_decoder_layers, d_model, num_heads, d_ff, dropout, norm_first, activation)
        self.output = nn.Linear(d_model, tgt_vocab_size, bias=False)
        init_embeddings(self, d_model, tie_embeddings)

    @classmethod
    def config_problems(cls, options: dict) -> list[str]:
        """The heads split d_model evenly."""
        d_model, heads = options.get("d_model"), options.get("num_heads")
        if not all(isinstance(v, int) and v >= 1 for v in (d_model, heads)):
            return []     # the ranges name them
        if d_model % heads:
            return [f"num_heads={heads}: d_model={d_model} is not divisible by it"]
        return []

    def embed(self, ids: torch.Tensor, table: nn.Embedding) -> torch.Tensor:
        return self.drop(self.positions(table(ids) * self.scale))

    def encode(self, src: torch.Tensor, src_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        if src_padding_mask is None:
            src_padding_mask = src == self.pad_token_id
        memory, _ = self.encoder(self.embed(src, self.src_embed), key_padding_mask=src_padding_mask)
        return memory

    def decode(self, tgt_in, memory, memory_padding_mask, src=None, need_weights: bool = False,
               last_only: bool = False):
        x = e = self.embed(tgt_in, self.tgt_embed)
        weights = []
        last = len(self.decoder.layers) - 1
        for k, layer in enumerate(self.decoder.layers):
            # the copy head needs the last layer's cross-attention; heat maps need every layer's
            want = need_weights or (self.copy and k == last)
            x, w = layer(x, memory, None, memory_padding_mask, True, None, want)
            weights.append(w["cross"])
        h = self.decoder.norm(x)
        if last_only:   # decoding needs only the newest position's scores
            h, e = h[:, -1:], e[:, -1:]
            weights = [w[:, :, -1:] if w is not None else None for w in weights]
        logits = self.output(h)
        cross = context = None
        if self.copy:
            cross = weights[-1].mean(1)                       # [B, T, S]: the heads' mean
            context = cross @ memory
        scores = self._scores(logits, cross, context, h, e, src)
        return scores, (weights if need_weights else None)


class RNNSeq2Seq(Seq2SeqBase):
    """Bidirectional GRU encoder; GRU decoder whose every output attends over the encoder states (bilinear
    score h_t^T W m_s, Luong et al. 2015), then tanh(W_c [h_t; c_t]) -> output layer."""

    def __init__(self, src_vocab_size: Provided[int], tgt_vocab_size: Provided[int], pad_token_id: Provided[int] = 0,
                 shared_vocab: Provided[bool] = True, d_model: Annotated[int, AtLeastOne] = 256,
                 num_layers: Annotated[int, AtLeastOne] = 1, dropout: Annotated[float, Probability] = 0.2,
                 tie_embeddings: bool = True, copy: bool = False, exclude_from_vocab: list[int] | None = None) -> None:
        super().__init__()
        self.config = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        self._setup_common(d_model, tgt_vocab_size, src_vocab_size, pad_token_id, copy, shared_vocab,
                           exclude_from_vocab)
        self.d_model = d_model
        self.tgt_embed = nn.Embedding(tgt_vocab_size, d_model, padding_idx=self.pad_token_id)
        share_src = tie_embeddings and shared_vocab and src_vocab_size == tgt_vocab_size
        self.src_embed = self.tgt_embed if share_src else nn.Embedding(src_vocab_size, d_model,
                                                                       padding_idx=self.pad_token_id)
        self.encoder_rnn = nn.GRU(d_model, d_model // 2, num_layers, batch_first=True, bidirectional=True,
                                  dropout=dropout if num_layers > 1 else 0.0)
        self.decoder_rnn = nn.GRU(d_model, d_model, num_layers, batch_first=True,
                                  dropout=dropout if num_layers > 1 else 0.0)
        self.bridge = nn.Linear(d_model, d_model)
        self.attn_w = nn.Linear(d_model, d_model, bias=False)
        self.combine = nn.Linear(2 * d_model, d_model)
        self.output = nn.Linear(d_model, tgt_vocab_size, bias=False)
        self.drop = nn.Dropout(dropout)
        self.num_layers = num_layers
        if tie_embeddings:
            self.output.weight = self.tgt_embed.weight

    @classmethod
    def config_problems(cls, options: dict) -> list[str]:
        """The bidirectional encoder gives each direction d_model / 2 units: d_model is even."""
        d_model = options.get("d_model")
        if isinstance(d_model, int) and d_model >= 1 and d_model % 2:
            return [f"d_model={d_model}: expected an even number (each encoder direction has d_model / 2 units)"]
        return []

    def encode(self, src: torch.Tensor, src_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        if src_padding_mask is None:
            src_padding_mask = src == self.pad_token_id
        lengths = (~src_padding_mask).sum(1).clamp_min(1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(self.drop(self.src_embed(src)), lengths, batch_first=True,
                                                   enforce_sorted=False)
        out, _ = self.encoder_rnn(packed)
        memory, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=src.shape[1])
        return memory

    def decode(self, tgt_in, memory, memory_padding_mask, src=None, need_weights: bool = False,
               last_only: bool = False):
        keep = (~memory_padding_mask).unsqueeze(-1).float()
        mean = (memory * keep).sum(1) / keep.sum(1).clamp_min(1.0)
        h0 = torch.tanh(self.bridge(mean)).unsqueeze(0).repeat(self.num_layers, 1, 1).contiguous()
        e = self.drop(self.tgt_embed(tgt_in))
        h, _ = self.decoder_rnn(e, h0)                                           # [B, T, d]
        if last_only:
            h, e = h[:, -1:], e[:, -1:]
        scores = h @ self.attn_w(memory).transpose(1, 2)                        # [B, T, S]
        scores = scores.masked_fill(memory_padding_mask.unsqueeze(1), float("-inf"))
        alpha = scores.softmax(-1)
        context = alpha @ memory
        state = torch.tanh(self.combine(torch.cat([h, context], -1)))
        logits = self.output(self.drop(state))
        out = self._scores(logits, alpha, context, state, e, src)
        return out, ([alpha.unsqueeze(1)] if need_weights else None)
