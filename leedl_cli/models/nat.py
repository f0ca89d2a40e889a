"""The non-autoregressive Transformer (ch. 4, section 4.5.2; Gu et al. 2018): `model=nat_transformer`.

The encoder is the Transformer's (models/seq2seq.py: sinusoidal positions, self-attention blocks). The decoder
writes the whole sentence at once:

- a length predictor, a classifier over target lengths 0 .. `max_target_length` from the mean of the encoder's
  states (trained jointly with its cross-entropy; at test its argmax is the sentence's length);
- decoder inputs, one per target position: the encoder's states copied to the target length (`decoder_input:
  copy`, Gu et al.'s uniform copy: target position t of T reads source position floor((t + 1/2) S / T) of the S
  source pieces) or learned positional queries (`decoder_input: positional`), plus sinusoidal positions, plus the
  embedding of the position's token when it is known or a learned [MASK] vector when it is not (mask-predict,
  Ghazvininejad et al. 2019: a one-pass model sees [MASK] everywhere);
- decoder blocks *without* the causal mask (every position sees every other), cross-attention to the encoder,
  then the output layer (tied to the target embedding with `tie_embeddings`).

`forward(src, tokens, masked, lengths) -> (logits [B, T, V], length logits [B, max_target_length + 1])`;
`encode`, `length_logits`, `decode` are its parts (leedl_cli.nat_decoding runs them at test time). The model
knows nothing of search and keeps its constructor's arguments in `self.config` (leedl_cli.translate).
"""
from __future__ import annotations

import math
from typing import Annotated, Literal, get_args

import torch
from torch import nn

from leedl_cli.contract import AtLeastOne, Probability, Provided
from leedl_cli.errors import LeedlError
from leedl_cli.models.attention import (
    PositionalEncoding,
    TransformerDecoder,
    TransformerEncoder,
    heads_problems,
)
from leedl_cli.models.seq2seq import init_embeddings

DecoderInput = Literal["copy", "positional"]
DECODER_INPUTS: tuple[str, ...] = get_args(DecoderInput)


def source_lengths(src_padding_mask: torch.Tensor) -> torch.Tensor:
    """Source pieces per sentence without the final [EOS] (at least 1): what uniform copy spreads out."""
    return ((~src_padding_mask).sum(1) - 1).clamp_min(1)


def uniform_copy_index(src_lengths: torch.Tensor, tgt_lengths: torch.Tensor, width: int) -> torch.Tensor:
    """[B, width] source positions: target position t of T reads floor((t + 1/2) * S / T) (clamped to S - 1)."""
    t = torch.arange(width, device=src_lengths.device, dtype=torch.float32).unsqueeze(0)
    s = src_lengths.float().unsqueeze(1)
    idx = torch.floor((t + 0.5) * s / tgt_lengths.clamp_min(1).float().unsqueeze(1)).long()
    return torch.minimum(idx, src_lengths.unsqueeze(1) - 1).clamp_min(0)


def uniform_copy(memory: torch.Tensor, src_padding_mask: torch.Tensor, tgt_lengths: torch.Tensor,
                 width: int) -> torch.Tensor:
    """The encoder states [B, S, d] copied to each sentence's target length: [B, width, d]."""
    idx = uniform_copy_index(source_lengths(src_padding_mask), tgt_lengths, width)
    return memory.gather(1, idx.unsqueeze(-1).expand(-1, -1, memory.shape[-1]))


class NATransformer(nn.Module):
    def __init__(self, src_vocab_size: Provided[int], tgt_vocab_size: Provided[int], pad_token_id: Provided[int] = 0,
                 shared_vocab: Provided[bool] = True, d_model: Annotated[int, AtLeastOne] = 256,
                 num_encoder_layers: Annotated[int, AtLeastOne] = 3, num_decoder_layers: Annotated[int, AtLeastOne] = 3,
                 num_heads: Annotated[int, AtLeastOne] = 4, d_ff: Annotated[int, AtLeastOne] = 1024,
                 dropout: Annotated[float, Probability] = 0.1, norm_first: bool = True, activation: str = "relu",
                 tie_embeddings: bool = True, max_len: Annotated[int, AtLeastOne] = 512,
                 max_target_length: Annotated[int, AtLeastOne] = 128, decoder_input: DecoderInput = "copy") -> None:
        super().__init__()
        self.config = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        if max_target_length > max_len:
            raise LeedlError(f"model.max_target_length={max_target_length}: longer than model.max_len={max_len}")
        self.pad_token_id, self.d_model, self.scale = int(pad_token_id), d_model, math.sqrt(d_model)
        self.max_target_length, self.decoder_input = int(max_target_length), decoder_input
        self.tgt_embed = nn.Embedding(tgt_vocab_size, d_model, padding_idx=self.pad_token_id)
        share_src = tie_embeddings and shared_vocab and src_vocab_size == tgt_vocab_size
        self.src_embed = self.tgt_embed if share_src else nn.Embedding(src_vocab_size, d_model,
                                                                       padding_idx=self.pad_token_id)
        self.positions = PositionalEncoding("sinusoidal", d_model, max_len)
        self.drop = nn.Dropout(dropout)
        self.encoder = TransformerEncoder(num_encoder_layers, d_model, num_heads, d_ff, dropout, norm_first, activation)
        self.decoder = TransformerDecoder(num_decoder_layers, d_model, num_heads, d_ff, dropout, norm_first, activation)
        self.length_head = nn.Linear(d_model, self.max_target_length + 1)
        self.queries = nn.Embedding(self.max_target_length, d_model) if decoder_input == "positional" else None
        self.mask_vector = nn.Parameter(torch.randn(d_model) * d_model ** -0.5)
        self.output = nn.Linear(d_model, tgt_vocab_size, bias=False)
        init_embeddings(self, d_model, tie_embeddings)

    @classmethod
    def config_problems(cls, options: dict) -> list[str]:
        """The heads split d_model evenly; the length classes fit the positions."""
        problems = heads_problems(options)
        longest, positions = options.get("max_target_length"), options.get("max_len")
        if isinstance(longest, int) and isinstance(positions, int) and longest > positions:
            problems.append(f"max_target_length={longest}: expected at most max_len={positions}")
        return problems

    # ---- encoder and length ------------------------------------------------------------------
    def encode(self, src: torch.Tensor, src_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        if src_padding_mask is None:
            src_padding_mask = src == self.pad_token_id
        x = self.drop(self.positions(self.src_embed(src) * self.scale))
        memory, _ = self.encoder(x, key_padding_mask=src_padding_mask)
        return memory

    def length_logits(self, memory: torch.Tensor, src_padding_mask: torch.Tensor) -> torch.Tensor:
        """Scores of the target lengths 0 .. max_target_length from the mean-pooled encoder states."""
        keep = (~src_padding_mask).unsqueeze(-1).to(memory.dtype)
        pooled = (memory * keep).sum(1) / keep.sum(1).clamp_min(1.0)
        return self.length_head(pooled)

    def predict_lengths(self, memory: torch.Tensor, src_padding_mask: torch.Tensor) -> torch.Tensor:
        """The most probable target length of each sentence, at least 1."""
        return self.length_logits(memory, src_padding_mask).argmax(-1).clamp_min(1)

    # ---- decoder -----------------------------------------------------------------------------
    def decoder_queries(self, memory, src_padding_mask, lengths: torch.Tensor, width: int) -> torch.Tensor:
        if self.queries is None:
            return uniform_copy(memory, src_padding_mask, lengths, width)
        if width > self.max_target_length:
            raise LeedlError(f"a target of {width} pieces is longer than model.max_target_length="
                             f"{self.max_target_length}")
        return self.queries.weight[:width].unsqueeze(0).expand(memory.shape[0], -1, -1)

    def decode(self, tokens: torch.Tensor, masked: torch.Tensor, memory: torch.Tensor,
               src_padding_mask: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits [B, T, V] of every target position at once. tokens [B, T]: the known tokens (ignored where
        `masked` is True); positions at or beyond a sentence's length are padding (neither attended nor scored)."""
        width = tokens.shape[1]
        padding = torch.arange(width, device=tokens.device).unsqueeze(0) >= lengths.unsqueeze(1)
        known = self.tgt_embed(tokens.masked_fill(masked | padding, self.pad_token_id)) * self.scale
        inputs = torch.where(masked.unsqueeze(-1), self.mask_vector.to(known.dtype), known)
        x = self.decoder_queries(memory, src_padding_mask, lengths, width) + inputs
        x = self.drop(self.positions(x))
        h, _ = self.decoder(x, memory, padding, src_padding_mask, causal=False)
        return self.output(h)

    def forward(self, src: torch.Tensor, tokens: torch.Tensor, masked: torch.Tensor, lengths: torch.Tensor):
        """(token logits [B, T, V], length logits [B, max_target_length + 1]) given the true `lengths`."""
        src_mask = src == self.pad_token_id
        memory = self.encode(src, src_mask)
        return self.decode(tokens, masked, memory, src_mask, lengths), self.length_logits(memory, src_mask)

    def step_fn(self, src: torch.Tensor):
        raise LeedlError("model=nat_transformer writes every position at once and has no next-token step; decode it "
                         "with leedl_cli.nat_decoding.decode_nat (what its test does)")
