"""Vision Transformer (ch. 3, section 3.6: self-attention vs CNN): an image as a sequence of patches.

The image is cut into `patch_size` x `patch_size` patches, each flattened and projected to `d_model` (one
"word" per patch); learned (or sinusoidal) positions are added; the encoder blocks of `models/attention.py`
let every patch attend to every other patch (a CNN only sees its receptive field). The image's class comes
from a learned class token (`pooling: cls`, as in ViT) or the mean over patches (`pooling: mean`).
Self-attention is the more flexible model: with little data it loses to the CNN, with more it catches up.
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from leedl_cli.errors import LeedlError
from leedl_cli.models.attention import PositionalEncoding, TransformerEncoder


class ViT(nn.Module):
    def __init__(self, in_channels: int, image_size: int, num_classes: int, patch_size: int = 7, d_model: int = 64,
                 num_layers: int = 4, num_heads: int = 4, d_ff: int | None = None, dropout: float = 0.1,
                 pooling: Literal["cls", "mean"] = "cls",
                 positional_encoding: Literal["none", "sinusoidal", "learned"] = "learned", norm_first: bool = True) -> None:
        super().__init__()
        if image_size % patch_size:
            raise LeedlError(f"model.patch_size={patch_size} must divide the image size {image_size}")
        if pooling not in ("cls", "mean"):
            raise LeedlError(f"model.pooling={pooling!r}: one of cls, mean")
        self.pooling, self.patch_size = pooling, patch_size
        n_patches = (image_size // patch_size) ** 2
        self.patches = nn.Conv2d(in_channels, d_model, patch_size, stride=patch_size)   # = flatten + linear per patch
        self.cls = nn.Parameter(torch.zeros(1, 1, d_model)) if pooling == "cls" else None
        self.positions = PositionalEncoding(positional_encoding, d_model, n_patches + 1)
        self.drop = nn.Dropout(dropout)
        self.encoder = TransformerEncoder(num_layers, d_model, num_heads, d_ff, dropout, norm_first)
        self.head = nn.Linear(d_model, num_classes)

    def forward(self, x: torch.Tensor, need_weights: bool = False) -> torch.Tensor:
        h = self.patches(x).flatten(2).transpose(1, 2)                  # [B, patches, d_model]
        if self.cls is not None:
            h = torch.cat([self.cls.expand(len(h), -1, -1), h], dim=1)
        h, self._weights = self.encoder(self.drop(self.positions(h)), need_weights=need_weights)
        return self.head(h[:, 0] if self.pooling == "cls" else h.mean(1))
