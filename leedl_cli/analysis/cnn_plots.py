"""Pictures of what a CNN learned (chapter 2), written into a run's plots/:

- `filters.png`: the first convolution's filters (each a 3x3 receptive field of shared weights);
- `feature_maps.png`: one test image and the first layer's feature maps after the ReLU: where each filter's
  pattern appears in the image;
- `spatial_transformer.png` (model=stn_cnn): rotated test images and what the spatial transformer turns them into.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from leedl_cli.data.augment import transform_images


def first_conv(model: nn.Module) -> tuple[nn.Module, nn.Conv2d] | None:
    """(the network the classifier path runs through, its first Conv2d), skipping a spatial transformer."""
    body = getattr(model, "cnn", model)
    for m in body.modules():
        if isinstance(m, nn.Conv2d):
            return body, m
    return None


def _grid(n: int) -> tuple[int, int]:
    cols = min(n, 8)
    return math.ceil(n / cols), cols


def _show(ax, img: torch.Tensor, cmap="gray") -> None:
    img = img.detach().float().cpu()
    if img.dim() == 3 and img.shape[0] == 3:
        img = (img - img.min()) / (img.max() - img.min() + 1e-8)
        ax.imshow(img.permute(1, 2, 0).numpy())
    else:
        ax.imshow(img.reshape(img.shape[-2:]).numpy(), cmap=cmap)
    ax.set_xticks([])
    ax.set_yticks([])


@torch.no_grad()
def draw_cnn_plots(model: nn.Module, test_set: tuple[torch.Tensor, torch.Tensor], folder: Path,
                   background: float = 0.0, image_index: int = 0) -> list[str]:
    """The pictures of `model` on `test_set` = (images, labels) into `folder`; `background`: the value of an empty
    pixel (what a rotation fills in). Returns the names of the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    written: list[str] = []
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    x_test, y_test = test_set
    found = first_conv(model)
    if found is not None:
        body, conv = found
        w = conv.weight.detach().cpu()
        rows, cols = _grid(len(w))
        fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.1, rows * 1.1 + 0.4), squeeze=False)
        for i, ax in enumerate(axes.flat):
            if i < len(w):
                _show(ax, w[i].mean(0) if w.shape[1] not in (1, 3) else w[i], cmap="bwr")
            else:
                ax.axis("off")
        fig.suptitle(f"first-layer filters ({w.shape[0]} of {w.shape[2]}x{w.shape[3]}, shared over the image)")
        fig.tight_layout()
        fig.savefig(folder / "filters.png", dpi=100)
        plt.close(fig)
        written.append("filters.png")

        x = x_test[image_index:image_index + 1].to(device)
        maps = {}
        hook_target = conv
        # the activation after the first conv's BN/ReLU when they follow it in a Sequential
        seq = next((m for m in body.modules() if isinstance(m, nn.Sequential) and any(c is conv for c in m)), None)
        if seq is not None:
            children = list(seq)
            i = next(k for k, c in enumerate(children) if c is conv)
            for c in children[i + 1:]:
                if isinstance(c, nn.Conv2d):
                    break
                hook_target = c
                if isinstance(c, (nn.ReLU, nn.MaxPool2d)):
                    if isinstance(c, nn.MaxPool2d):
                        hook_target = children[children.index(c) - 1]
                    break
        handle = hook_target.register_forward_hook(lambda m, i, o: maps.setdefault("a", o.detach().cpu()))
        model(x)
        handle.remove()
        a = maps["a"][0]
        rows, cols = _grid(len(a) + 1)
        fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.2, rows * 1.2 + 0.4), squeeze=False)
        for k, ax in enumerate(axes.flat):
            if k == 0:
                _show(ax, x[0])
                ax.set_title(f"input (label {int(y_test[image_index])})", fontsize=7)
            elif k <= len(a):
                _show(ax, a[k - 1], cmap="viridis")
                ax.set_title(f"filter {k - 1}", fontsize=7)
            else:
                ax.axis("off")
        fig.suptitle("feature maps of the first layer: where each filter's pattern is")
        fig.tight_layout()
        fig.savefig(folder / "feature_maps.png", dpi=100)
        plt.close(fig)
        written.append("feature_maps.png")

    if hasattr(model, "stn"):
        n = min(8, len(x_test))
        angles = torch.tensor([45.0, -45.0, 30.0, -30.0, 60.0, -60.0, 15.0, -15.0])[:n]
        rotated = transform_images(x_test[:n], angle_deg=angles, background=background).to(device)
        out = model.stn(rotated)
        fig, axes = plt.subplots(2, n, figsize=(n * 1.2, 3.0), squeeze=False)
        for k in range(n):
            _show(axes[0, k], rotated[k])
            axes[0, k].set_title(f"{angles[k]:+.0f} deg", fontsize=7)
            _show(axes[1, k], out[k])
        axes[0, 0].set_ylabel("input")
        axes[1, 0].set_ylabel("after STN")
        fig.suptitle("spatial transformer: rotated test images (top) and what the CNN behind it sees (bottom)")
        fig.tight_layout()
        fig.savefig(folder / "spatial_transformer.png", dpi=100)
        plt.close(fig)
        written.append("spatial_transformer.png")
    model.train(was_training)
    return written
