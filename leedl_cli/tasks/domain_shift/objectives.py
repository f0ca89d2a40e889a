"""Two losses of chapter 6.2 beside DANN's.

Away from the boundary (DIRT-T / VADA, Shu et al. 2018): the conditional entropy of the label predictor on
unlabelled target images, H = -sum_k p_k log p_k averaged over the batch, added to the loss so the decision
boundary moves away from where the target images lie (0 for a confident one-hot prediction, log K for a uniform
one).

Rotation prediction (Gidaris et al. 2018; the self-supervised task of test-time training, Sun et al. 2020):
each image rotated by 0, 90, 180 or 270 degrees, and the network asked which.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

ROTATIONS = 4   # 0, 90, 180, 270 degrees


def prediction_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean entropy (nats) of softmax(logits) over the batch: 0 for one-hot predictions, log K for uniform."""
    logp = F.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1).mean()


def rotate(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Image i of x [N, C, H, W] (H == W) rotated by k[i] * 90 degrees counter-clockwise."""
    out = x.clone()
    for r in range(1, ROTATIONS):
        m = k == r
        if m.any():
            out[m] = torch.rot90(x[m], r, dims=(2, 3))
    return out


def all_rotations(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every image of x in its 4 rotations, [4N, C, H, W], and the rotation labels [4N] (0..3)."""
    rotated = torch.cat([torch.rot90(x, r, dims=(2, 3)) for r in range(ROTATIONS)])
    labels = torch.arange(ROTATIONS, device=x.device).repeat_interleave(len(x))
    return rotated, labels


def rotation_loss(model, x: torch.Tensor, k: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(cross-entropy of G_r on x rotated by k, correct predictions). k None: all four rotations of every image."""
    if k is None:
        xr, k = all_rotations(x)
    else:
        xr = rotate(x, k)
    logits = model.rotation_predictor(model.features_of(xr))
    return F.cross_entropy(logits, k), (logits.argmax(-1) == k).sum()
