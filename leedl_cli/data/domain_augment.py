"""Domain generalization from one source domain (chapter 6.3): augmentations that turn grey MNIST digits into
images of many synthetic "domains", so a classifier trained on them alone meets MNIST-M as one more domain.

Every image keeps its digit (the grey level of the MNIST image is the mask m in [0, 1]) and gets a random
look, drawn per image:

- a background texture and a digit texture, each one of: a plain colour, a linear gradient between two colours
  in a random direction, stripes (a sinusoid of random frequency, direction and phase between two colours), or
  smooth random noise (a coarse grid of random colours, bilinearly upsampled: blobs of colour like a
  photograph out of focus). Textures are generated here, from random numbers: no photograph (no BSDS500 patch,
  which MNIST-M is made of) is used;
- the digit drawn over the background, x = m * digit + (1 - m) * background, with the digit's texture moved
  away from the background's brightness so the digit stays visible; or the difference image |background - m|
  (the digit's pixels colour-inverted);
- a colour inversion x -> 1 - x of the whole image with probability 1/2.

The draw is a pure function of a `torch.Generator`, so a batch's look follows from (seed, epoch, batch).
"""
from __future__ import annotations

import math
from typing import Literal, get_args

import torch
import torch.nn.functional as F

Texture = Literal["plain", "gradient", "stripes", "noise"]
TEXTURES = get_args(Texture)


def _colours(n: int, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(n, 3, 1, 1, generator=gen)


def _coordinates(n: int, size: int, gen: torch.Generator) -> torch.Tensor:
    """Each image's pixel coordinates projected on a random direction, in [-1, 1] * sqrt(2): [n, 1, S, S]."""
    angle = torch.rand(n, 1, 1, 1, generator=gen) * 2 * math.pi
    t = torch.linspace(-1, 1, size)
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    return torch.cos(angle) * xx + torch.sin(angle) * yy


def random_textures(n: int, size: int, gen: torch.Generator) -> torch.Tensor:
    """n colour textures [n, 3, S, S] in [0, 1], each of a random kind of `TEXTURES`."""
    kind = torch.randint(0, len(TEXTURES), (n,), generator=gen)
    a, b = _colours(n, gen), _colours(n, gen)
    plain = a.expand(n, 3, size, size)
    s = _coordinates(n, size, gen)
    gradient = a + (b - a) * (s / math.sqrt(2) + 1) / 2
    freq = 1 + torch.rand(n, 1, 1, 1, generator=gen) * 5
    phase = torch.rand(n, 1, 1, 1, generator=gen) * 2 * math.pi
    stripes = a + (b - a) * (torch.sin(freq * math.pi * s + phase) + 1) / 2
    cells = int(torch.randint(3, 8, (1,), generator=gen))
    noise = F.interpolate(torch.rand(n, 3, cells, cells, generator=gen), size=(size, size), mode="bilinear",
                          align_corners=True)
    out = torch.stack([plain, gradient, stripes, noise])          # [kinds, n, 3, S, S]
    return out[kind, torch.arange(n)].clamp_(0, 1)


def synthesize_domains(x: torch.Tensor, gen: torch.Generator, p_difference: float = 0.25,
                       p_invert: float = 0.5) -> torch.Tensor:
    """Grey digits x [n, C, S, S] in [0, 1] (C = 1, or 3 equal channels) -> coloured, textured images [n, 3, S, S]
    in [0, 1] with the same digits (see the module's docstring)."""
    n, _, size, _ = x.shape
    m = x.mean(1, keepdim=True).clamp(0, 1)
    background = random_textures(n, size, gen)
    digit = random_textures(n, size, gen)
    # the digit's texture moved away from the background's mean brightness: at least 0.35 apart
    gap = digit.mean((1, 2, 3), keepdim=True) - background.mean((1, 2, 3), keepdim=True)
    direction = torch.where(background.mean((1, 2, 3), keepdim=True) > 0.5, -1.0, 1.0)
    shift = torch.where(gap * direction < 0.35, direction * 0.35 - gap, torch.zeros_like(gap))
    digit = (digit + shift).clamp(0, 1)
    drawn = m * digit + (1 - m) * background
    difference = (background - m).abs()
    use_difference = torch.rand(n, 1, 1, 1, generator=gen) < p_difference
    out = torch.where(use_difference, difference, drawn)
    invert = torch.rand(n, 1, 1, 1, generator=gen) < p_invert
    return torch.where(invert, 1 - out, out)


class AugmentedLoader:
    """Training batches of an `InMemoryLoader` of grey images in [0, 1] through `synthesize_domains`, then
    normalised by (mean, std). The look of batch b of epoch e is drawn from seed (seed, e, b): the same in a
    resumed run. Everything else (length, shuffle, DDP share, the place in an epoch) is the loader's."""

    def __init__(self, loader, mean: torch.Tensor, std: torch.Tensor, seed: int = 0) -> None:
        self.loader, self.mean, self.std, self.seed = loader, mean, std, seed
        self.sampler = loader.sampler
        self.batch_sampler = None

    def __len__(self) -> int:
        return len(self.loader)

    @property
    def batches_trained(self) -> int | None:
        return self.loader.batches_trained

    @batches_trained.setter
    def batches_trained(self, n: int | None) -> None:
        self.loader.batches_trained = n

    def state_dict(self) -> dict:
        return self.loader.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.loader.load_state_dict(state)

    def __iter__(self):
        for xs, ys in self.loader:
            b = self.loader._yielded - 1
            gen = torch.Generator().manual_seed((self.seed * 1_000_003 + self.sampler.epoch) * 100_003 + b)
            yield (synthesize_domains(xs, gen) - self.mean) / self.std, ys
