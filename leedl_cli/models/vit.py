"""Vision Transformer (ch. 3, section 3.6: self-attention vs CNN): an image as a sequence of patches.

The image is cut into `patch_size` x `patch_size` patches, each flattened and projected to `d_model` (one
"word" per patch); learned (or sinusoidal) positions are added; the encoder blocks of `models/attention.py`
let every patch attend to every other patch (a CNN only sees its receptive field). The image's class comes
from a learned class token (`pooling: cls`, as in ViT) or the mean over patches (`pooling: mean`).
Self-attention is the more flexible model: with little data it loses to the CNN, with more it catches up.
"""
from __future__ import annotations

from typing import Annotated, Literal

import torch
from torch import nn

from leedl_cli.contract import AtLeastOne, Probability, Provided
from leedl_cli.errors import LeedlError
from leedl_cli.models.attention import POSITIONAL_ENCODINGS, PositionalEncoding, TransformerEncoder

Pooling = Literal["cls", "mean"]


class ViT(nn.Module):
    def __init__(self, in_channels: Provided[int], image_size: Provided[int], num_classes: Provided[int],
                 patch_size: Annotated[int, AtLeastOne] = 7, d_model: Annotated[int, AtLeastOne] = 64,
                 num_layers: Annotated[int, AtLeastOne] = 4, num_heads: Annotated[int, AtLeastOne] = 4,
                 d_ff: Annotated[int, AtLeastOne] | None = None, dropout: Annotated[float, Probability] = 0.1,
                 pooling: Pooling = "cls", positional_encoding: Literal[POSITIONAL_ENCODINGS] = "learned",
                 norm_first: bool = True) -> None:
        super().__init__()
        if image_size % patch_size:   # the image size comes from the data: known only here
            raise LeedlError(f"model.patch_size={patch_size} must divide the image size {image_size}")
        self.pooling, self.patch_size = pooling, patch_size
        n_patches = (image_size // patch_size) ** 2
        self.patches = nn.Conv2d(in_channels, d_model, patch_size, stride=patch_size)   # = flatten + linear per patch
        self.cls = nn.Parameter(torch.zeros(1, 1, d_model)) if pooling == "cls" else None
        self.positions = PositionalEncoding(positional_encoding, d_model, n_patches + 1)
        self.drop = nn.Dropout(dropout)
        self.encoder = TransformerEncoder(num_layers, d_model, num_heads, d_ff, dropout, norm_first)
        self.head = nn.Linear(d_model, num_classes)

    @classmethod
    def config_problems(cls, options: dict) -> list[str]:
        d_model, heads = options.get("d_model"), options.get("num_heads")
        if isinstance(d_model, int) and isinstance(heads, int) and heads > 0 and d_model % heads:
            return [f"num_heads={heads}: d_model={d_model} is not divisible by num_heads"]
        return []

    def forward(self, x: torch.Tensor, need_weights: bool = False) -> torch.Tensor:
        h = self.patches(x).flatten(2).transpose(1, 2)                  # [B, patches, d_model]
        if self.cls is not None:
            h = torch.cat([self.cls.expand(len(h), -1, -1), h], dim=1)
        h, self._weights = self.encoder(self.drop(self.positions(h)), need_weights=need_weights)
        return self.head(h[:, 0] if self.pooling == "cls" else h.mean(1))
