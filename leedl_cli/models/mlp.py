"""A fully connected network: flatten, [Linear -> activation -> dropout] x depth, Linear to classes.

Its input width is in_channels x image_size^2, the pixels of one image (a [K, 1, 1] image is K features)."""
from __future__ import annotations

from typing import Annotated, Literal

from torch import nn

from leedl_cli.contract import AtLeastOne, Probability, Provided

ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "gelu": nn.GELU}
Activation = Literal[tuple(ACTIVATIONS)]


class MLP(nn.Module):
    def __init__(self, in_channels: Provided[int], image_size: Provided[int], num_classes: Provided[int],
                 hidden: list[int] = (256, 256), activation: Activation = "relu",
                 dropout: Annotated[float, Probability] = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_channels * image_size * image_size
        for h in hidden:
            layers += [nn.Linear(width, h), ACTIVATIONS[activation]()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    @classmethod
    def config_problems(cls, options: dict) -> list[str]:
        return widths_problems("hidden", options.get("hidden"))

    def forward(self, x):
        return self.net(x)


def widths_problems(key: str, widths) -> list[str]:
    """Layer widths must be whole numbers >= 1 (a list's items carry no Range of their own)."""
    if widths and not all(isinstance(w, int) and not isinstance(w, bool) and AtLeastOne.holds(w) for w in widths):
        return [f"{key}={list(widths)}: expected layer widths >= 1"]
    return []
