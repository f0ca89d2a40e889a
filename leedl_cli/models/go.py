"""AlphaGo's policy network (Silver et al. 2016; chapter 2.8): the board as a 19x19 image with one channel per
feature plane; the first layer convolves 5x5, the next ones 3x3, each with k filters, zero padding and stride 1
(the 19x19 resolution is kept all the way), a ReLU after each; a final 1x1 convolution gives one number per
point, plus a learned bias per point, and the softmax over the 361 points is the move distribution.

No pooling: a move is one exact point, and subsampling throws away where things are. `pooling=true` is the
ablation: 2x2 max-pooling after the first layer (19x19 -> 10x10), the 3x3 layers at that resolution, and the
maps scaled back up to 19x19 (nearest) before the 1x1 layer.
"""
from __future__ import annotations

from typing import Annotated

import torch
import torch.nn.functional as F
from torch import nn

from leedl_cli.contract import AtLeastOne, Provided, Range


class GoCNN(nn.Module):
    def __init__(self, in_channels: Provided[int], board_size: Provided[int] = 19,
                 filters: Annotated[int, AtLeastOne] = 64, layers: Annotated[int, Range(2)] = 6,
                 pooling: bool = False, batch_norm: bool = False) -> None:
        """`layers`: all convolutional layers, at least 2 (the 5x5 one and the 1x1 output)."""
        super().__init__()
        self.board_size, self.pooling = board_size, pooling

        def block(c_in: int, kernel: int) -> list[nn.Module]:
            out = [nn.Conv2d(c_in, filters, kernel, padding=kernel // 2, bias=not batch_norm)]
            if batch_norm:
                out.append(nn.BatchNorm2d(filters))
            return out + [nn.ReLU()]

        self.first = nn.Sequential(*block(in_channels, 5))
        self.pool = nn.MaxPool2d(2, ceil_mode=True) if pooling else nn.Identity()
        self.body = nn.Sequential(*[m for _ in range(layers - 2) for m in block(filters, 3)])
        self.head = nn.Conv2d(filters, 1, 1, bias=False)
        self.point_bias = nn.Parameter(torch.zeros(board_size * board_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(self.pool(self.first(x)))
        if self.pooling:
            h = F.interpolate(h, size=(self.board_size, self.board_size), mode="nearest")
        return self.head(h).flatten(1) + self.point_bias
