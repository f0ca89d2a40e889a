"""A convolutional network (chapter 2): [conv 3x3 -> BN -> ReLU -> max-pool 2] per stage, then a classifier.

Receptive fields and shared weights come from the convolutions; pooling halves the resolution per stage
while the image is larger than 2 pixels (so it fits 8x8 digits as well as 32x32 CIFAR). `pooling=false` is
the book's "without pooling" ablation: each stage's convolution takes stride 2 instead, so the resolution and
the classifier's size are the same as with pooling (the comparison is pooling vs strided subsampling).
"""
from __future__ import annotations

from typing import Annotated

from torch import nn

from leedl_cli.contract import AtLeastOne, Probability, Provided
from leedl_cli.models.mlp import widths_problems


class CNN(nn.Module):
    def __init__(self, in_channels: Provided[int], num_classes: Provided[int], image_size: Provided[int],
                 channels: list[int] = (32, 64), hidden: Annotated[int, AtLeastOne] = 128,
                 dropout: Annotated[float, Probability] = 0.25, batch_norm: bool = True, pooling: bool = True) -> None:
        super().__init__()
        stages: list[nn.Module] = []
        c, size = in_channels, image_size
        for out in channels:
            subsample = size > 2
            stride = 2 if subsample and not pooling else 1
            stages += [nn.Conv2d(c, out, 3, padding=1, stride=stride, bias=not batch_norm)]
            if batch_norm:
                stages.append(nn.BatchNorm2d(out))
            stages.append(nn.ReLU())
            if subsample:
                if pooling:
                    stages.append(nn.MaxPool2d(2))
                size = size // 2 if pooling else (size + 1) // 2
            c = out
        self.features = nn.Sequential(*stages)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(c * size * size, hidden), nn.ReLU(),
            nn.Dropout(dropout), nn.Linear(hidden, num_classes),
        )

    @classmethod
    def config_problems(cls, options: dict) -> list[str]:
        return widths_problems("channels", options.get("channels"))

    def forward(self, x):
        return self.classifier(self.features(x))
