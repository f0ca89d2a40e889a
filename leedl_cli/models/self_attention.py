"""A self-attention encoder trained from scratch (chapter 3): token features + positions -> encoder blocks.

Built from `models/attention.py`: `num_layers` encoder blocks of `num_heads` heads at width `d_model`,
positional encoding `none | sinusoidal | learned` (section 3.4), truncated attention `window: w` (each
position sees +-w positions, section 3.5; null = full). Per-token logits for tagging (`pooling: none`) or a
pooled sentence vector -> linear for sentence classification (`pooling: mean | max | first`).

`attention_maps(...)` runs the same forward pass returning alpha' of every layer and head (heat maps).
"""
from __future__ import annotations

from typing import Annotated

import torch
from torch import nn

from leedl_cli.contract import NonNegative, Provided
from leedl_cli.models.attention import (
    Dropout,
    PositionalEncoding,
    PositionalKind,
    TransformerEncoder,
    Width,
    heads_problems,
)
from leedl_cli.models.sequence import SequenceModel


class SelfAttentionModel(SequenceModel):
    def __init__(self, vocab_size: Provided[int], num_classes: Provided[int], d_model: Width = 128,
                 num_layers: Width = 2, num_heads: Width = 4, d_ff: Width | None = None, dropout: Dropout = 0.1,
                 positional_encoding: PositionalKind = "sinusoidal", window: Annotated[int, NonNegative] | None = None,
                 norm_first: bool = True, max_len: Width = 1024, **kwargs) -> None:
        super().__init__(vocab_size, num_classes, d_model, dropout=dropout, **kwargs)
        self.positions = PositionalEncoding(positional_encoding, d_model, max_len)
        self.encoder = TransformerEncoder(num_layers, d_model, num_heads, d_ff, dropout, norm_first)
        self.window = None if window is None else int(window)
        self.classifier = nn.Linear(d_model, num_classes)

    @classmethod
    def config_problems(cls, options: dict) -> list[str]:
        return heads_problems(options)

    def encode(self, x, mask, need_weights: bool = False, **kwargs):
        h, weights = self.encoder(self.positions(x), key_padding_mask=~mask, window=self.window,
                                  need_weights=need_weights)
        self._weights = weights if need_weights else None
        return h

    @torch.no_grad()
    def attention_maps(self, input_ids, suffix_ids=None, shape_ids=None, char_ids=None) -> list[torch.Tensor]:
        """alpha' [B, H, L, L] of every layer for this batch (evaluation mode)."""
        was = self.training
        self.eval()
        self.forward(input_ids, suffix_ids, shape_ids, char_ids, need_weights=True)
        self.train(was)
        return self._weights
