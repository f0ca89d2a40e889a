"""Data augmentation on the fly for in-memory image batches, and the geometric transforms of test images.

Every transform here is one affine map per image (rotation, scale, translation, random resized crop, horizontal
flip), applied to a whole batch at once with `torch.nn.functional.affine_grid` + `grid_sample` (bilinear); pixels
that come from outside the image get the data set's background value. A run that does not augment never reaches
this code: its training loader is the plain `InMemoryLoader`.

`task.data.augment` names the transforms, joined by `+` (or a list): `rotate`, `translate`, `crop`, `flip`, and
`standard` (= all that the data set allows). Each may carry its strength, after a colon or right after the name
(`rotate:30` = `rotate30`; the second form needs no escaping in Hydra sweeps):

    rotate:30     uniform angle in [-30, 30] degrees                  (default 20)
    translate:0.1 shift by up to 10% of the image size in x and y    (default 0.1)
    crop:0.6      random resized crop: area in [0.6, 1] of the image, aspect ratio in [3/4, 4/3], resized back
                  to full size                                        (default 0.6)
    scale:0.2     uniform zoom in [1/(1+0.2), 1+0.2]                  (default 0.2)
    flip          horizontal flip with probability 0.5 (only where the label survives: CIFAR-10, not digits)

e.g. `task.data.augment=rotate:30+crop` or `task.data.augment=standard`.
"""
from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F

from leedl_cli.data.memory import InMemoryLoader
from leedl_cli.errors import LeedlError

DEFAULTS = {"rotate": 20.0, "translate": 0.1, "crop": 0.6, "scale": 0.2, "flip": 0.5}
STANDARD = ["rotate", "translate", "crop", "flip"]


def parse_augment(spec, allows_flip: bool = False) -> dict[str, float]:
    """`rotate:30+crop` (or a list of such items) -> {"rotate": 30.0, "crop": 0.6}; None/"none"/"" -> {}."""
    if spec is None or spec is False:
        return {}
    items = list(spec) if isinstance(spec, (list, tuple)) else str(spec).replace(",", "+").split("+")
    out: dict[str, float] = {}
    for item in (str(i).strip() for i in items):
        if not item or item.lower() in ("none", "null", "false"):
            continue
        match = re.fullmatch(r"([A-Za-z_]+):?\s*(.*)", item)
        name, value = (match.group(1), match.group(2)) if match else (item, "")
        name = name.strip().lower()
        if name == "standard":
            for n in STANDARD:
                if n != "flip" or allows_flip:
                    out.setdefault(n, DEFAULTS[n])
            continue
        if name not in DEFAULTS:
            raise LeedlError(f"task.data.augment={spec!r}: unknown transform {name!r}; accepted: "
                             f"{', '.join(DEFAULTS)} or standard, joined by '+', each with an optional ':strength' "
                             f"(e.g. rotate:30+crop)")
        if name == "flip" and not allows_flip:
            raise LeedlError(f"task.data.augment={spec!r}: this data set's labels do not survive a horizontal flip "
                             f"(digits, clothes); use rotate, translate, crop or scale")
        try:
            strength = float(value) if value else DEFAULTS[name]
        except ValueError:
            raise LeedlError(f"task.data.augment={spec!r}: the strength of {name!r} must be a number, "
                             f"got {value!r}") from None
        bounds = {"crop": (0.0, 1.0), "flip": (0.0, 1.0)}.get(name, (0.0, math.inf))
        if not (bounds[0] < strength <= bounds[1]) and not (name in ("rotate", "translate") and strength >= 0):
            raise LeedlError(f"task.data.augment={spec!r}: {name} strength {strength} out of range "
                             f"{bounds[0]} < strength <= {bounds[1]}")
        out[name] = strength
    return out


def affine_matrices(n: int, angle_deg=None, scale=None, shift=None, crop=None, flip=None) -> torch.Tensor:
    """[n, 2, 3] matrices for `affine_grid` (output coordinates -> input coordinates, in [-1, 1] units).

    angle_deg / scale: [n] (the image turns by the angle and appears `scale` times larger); shift: [n, 2] (the
    content moves by it); crop: ([n, 2] window size, [n, 2] window centre), the part of the image that fills the
    output; flip: [n] bool.
    """
    a = torch.zeros(n) if angle_deg is None else torch.as_tensor(angle_deg, dtype=torch.float32)
    s = torch.ones(n) if scale is None else torch.as_tensor(scale, dtype=torch.float32)
    rad = a * (math.pi / 180)
    cos, sin = torch.cos(rad) / s, torch.sin(rad) / s
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin, sin, cos
    if crop is not None:
        size, centre = crop
        theta[:, 0, :2] *= size[:, :1]
        theta[:, 1, :2] *= size[:, 1:]
        theta[:, :, 2] += centre
    if shift is not None:
        theta[:, :, 2] -= shift
    if flip is not None:
        theta[:, :, 0] = torch.where(flip[:, None], -theta[:, :, 0], theta[:, :, 0])
    return theta


def warp(x: torch.Tensor, theta: torch.Tensor, background: float = 0.0) -> torch.Tensor:
    """Apply per-image affine maps to a batch [N, C, H, W]; outside pixels take the value `background`."""
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    if background:
        return F.grid_sample(x - background, grid, mode="bilinear", padding_mode="zeros",
                             align_corners=False) + background
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def transform_images(x: torch.Tensor, angle_deg=None, scale=None, background: float = 0.0,
                     batch: int = 4096) -> torch.Tensor:
    """The images rotated by angle_deg ([N] or a number) and scaled by `scale` about their centre."""
    n = len(x)
    if angle_deg is not None and not torch.is_tensor(angle_deg):
        angle_deg = torch.full((n,), float(angle_deg))
    if scale is not None and not torch.is_tensor(scale):
        scale = torch.full((n,), float(scale))
    theta = affine_matrices(n, angle_deg, scale)
    return torch.cat([warp(x[i:i + batch], theta[i:i + batch], background) for i in range(0, n, batch)])


def random_matrices(n: int, augment: dict[str, float], gen: torch.Generator) -> torch.Tensor:
    def uniform(lo, hi, *shape):
        return lo + (hi - lo) * torch.rand(*(shape or (n,)), generator=gen)

    angle = uniform(-augment["rotate"], augment["rotate"]) if "rotate" in augment else None
    scale = None
    if "scale" in augment:
        k = math.log1p(augment["scale"])
        scale = torch.exp(uniform(-k, k))
    shift = uniform(-2 * augment["translate"], 2 * augment["translate"], n, 2) if "translate" in augment else None
    crop = None
    if "crop" in augment:
        area = uniform(augment["crop"], 1.0)
        log_ratio = uniform(math.log(3 / 4), math.log(4 / 3))
        w = torch.sqrt(area * torch.exp(log_ratio)).clamp(max=1.0)
        h = torch.sqrt(area / torch.exp(log_ratio)).clamp(max=1.0)
        size = torch.stack([w, h], dim=1)
        centre = (1 - size) * uniform(-1.0, 1.0, n, 2)
        crop = (size, centre)
    flip = torch.rand(n, generator=gen) < augment["flip"] if "flip" in augment else None
    return affine_matrices(n, angle, scale, shift, crop, flip)


class AugmentedLoader(InMemoryLoader):
    """`InMemoryLoader` whose training batches are transformed on the fly: new random transforms every batch,
    a pure function of (seed, epoch, batch index, rank) like the shuffle, so a run resumed mid-epoch sees the
    same images as an uninterrupted one."""

    def __init__(self, *tensors: torch.Tensor, augment: dict[str, float], background: float = 0.0, **kwargs):
        super().__init__(*tensors, **kwargs)
        self.augment, self.background = augment, background

    def __iter__(self):
        gen = torch.Generator()
        for batch in super().__iter__():
            # the pass sets sampler.epoch (also when resuming) before its first batch; _yielded = index + 1
            gen.manual_seed(((self.seed * 100_003 + self.sampler.epoch) * 1_000_003 + self._yielded) * 64
                            + self.rank)
            x = batch[0]
            theta = random_matrices(len(x), self.augment, gen)
            yield (warp(x, theta, self.background), *batch[1:])
