"""A spatial transformer layer (Jaderberg et al. 2015, chapter 2) in front of the CNN.

A small localisation network looks at the image and outputs the 6 numbers of an affine map; the map becomes a
sampling grid (`F.affine_grid`) and the image is resampled through it (`F.grid_sample`, bilinear), so the CNN
behind it sees the input turned, scaled and shifted back towards the way its training images look. The whole
thing is differentiable and learned from the classification loss alone. The last layer starts at zero with the
identity as its bias: at initialisation the transformer passes the image through unchanged.
"""
from __future__ import annotations

from typing import Annotated

import torch
import torch.nn.functional as F
from torch import nn

from leedl_cli.contract import AtLeastOne, Probability, Provided
from leedl_cli.models.cnn import CNN


class SpatialTransformer(nn.Module):
    def __init__(self, in_channels: int, hidden: Annotated[int, AtLeastOne] = 32) -> None:
        super().__init__()
        self.localisation = nn.Sequential(
            nn.Conv2d(in_channels, 8, 7, padding=3), nn.MaxPool2d(2), nn.ReLU(),
            nn.Conv2d(8, 10, 5, padding=2), nn.MaxPool2d(2), nn.ReLU(),
            nn.AdaptiveAvgPool2d(3), nn.Flatten(),
            nn.Linear(10 * 3 * 3, hidden), nn.ReLU(), nn.Linear(hidden, 6),
        )
        nn.init.zeros_(self.localisation[-1].weight)
        with torch.no_grad():
            self.localisation[-1].bias.copy_(torch.tensor([1.0, 0, 0, 0, 1.0, 0]))

    def theta(self, x: torch.Tensor) -> torch.Tensor:
        return self.localisation(x).view(-1, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid = F.affine_grid(self.theta(x), list(x.shape), align_corners=False)
        # "border": pixels from outside the image repeat the edge (the background of these images)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class STNCNN(nn.Module):
    def __init__(self, in_channels: Provided[int], num_classes: Provided[int], image_size: Provided[int],
                 stn_hidden: Annotated[int, AtLeastOne] = 32, channels: list[int] = (32, 64),
                 hidden: Annotated[int, AtLeastOne] = 128, dropout: Annotated[float, Probability] = 0.25,
                 batch_norm: bool = True, pooling: bool = True) -> None:
        super().__init__()
        self.stn = SpatialTransformer(in_channels, stn_hidden)
        self.cnn = CNN(in_channels, num_classes, image_size, channels, hidden, dropout, batch_norm, pooling)

    config_problems = CNN.config_problems

    def forward(self, x):
        return self.cnn(self.stn(x))
