"""A few target labels (chapter 6.2): fine-tune the source-trained network on a handful of labelled target images,
and watch the target test accuracy as the updates go on. The book's warning: with very few images, many
iterations overfit them; the curve (`finetune_curve`) shows whether and when the test accuracy falls.

The whole network (G_f and G_y) is trained by cross-entropy on the labelled images, in batches of at most
`batch_size` drawn by a seeded shuffle (an epoch: one pass over the images), with the run's optimizer at a fixed
learning rate. The test accuracy is measured every `eval_every` updates (and before the first).
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F

from leedl_cli.atomic import replace_atomically, write_json_atomic

log = logging.getLogger(__name__)


@torch.no_grad()
def accuracy(model, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    was = model.training
    model.eval()
    correct = sum(int((model(xb).argmax(-1) == yb).sum()) for xb, yb in zip(x.split(batch_size), y.split(batch_size)))
    model.train(was)
    return correct / max(1, len(y))


def finetune(model, optimizer, labelled: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor],
             steps: int, batch_size: int = 64, eval_every: int = 10, seed: int = 0) -> list[dict]:
    """Fine-tune `model` in place for `steps` updates on `labelled` (x, y); the curve: one row per evaluation,
    {step, epoch (passes over the labelled images), train_loss, target_test_acc}."""
    device = next(model.parameters()).device
    x, y = (t.to(device) for t in labelled)
    tx, ty = (t.to(device) for t in test)
    n = len(y)
    bs = max(1, min(batch_size, n))
    gen = torch.Generator().manual_seed(seed)
    order, at = torch.randperm(n, generator=gen), 0
    curve = [{"step": 0, "epoch": 0.0, "train_loss": float("nan"), "target_test_acc": accuracy(model, tx, ty)}]
    model.train()
    losses: list[float] = []
    with torch.inference_mode(False), torch.enable_grad():
        for step in range(1, steps + 1):
            if at + bs > n:   # a new pass over the labelled images
                order, at = torch.randperm(n, generator=gen), 0
            idx = order[at:at + bs].to(device)
            at += bs
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            if step % eval_every == 0 or step == steps:
                curve.append({"step": step, "epoch": step * bs / n, "train_loss": sum(losses) / len(losses),
                              "target_test_acc": accuracy(model, tx, ty)})
                losses = []
    optimizer.zero_grad(set_to_none=True)
    return curve


def summarize(curve: list[dict]) -> dict:
    """The curve's start, peak and end: what the book's warning is about (the end below the peak: overfitting)."""
    accs = [row["target_test_acc"] for row in curve]
    best = max(range(len(accs)), key=accs.__getitem__)
    return {"before": accs[0], "peak": accs[best], "peak_step": curve[best]["step"], "final": accs[-1],
            "final_step": curve[-1]["step"], "drop_from_peak": accs[best] - accs[-1]}


def save_curve(curve: list[dict], plots: Path, labels: int) -> dict:
    """plots/finetune_curve.json and plots/finetune_curve.png (target test accuracy against fine-tuning updates)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    write_json_atomic(plots / "finetune_curve.json", {"labels": labels, "curve": curve})
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([r["step"] for r in curve], [r["target_test_acc"] for r in curve], marker=".")
    ax.set_xlabel("fine-tuning updates")
    ax.set_ylabel("accuracy, real MNIST-M test")
    ax.set_title(f"fine-tuning on {labels} labelled MNIST-M images")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = plots / "finetune_curve.png"
    replace_atomically(path, lambda f: fig.savefig(f, format="png", dpi=100), binary=True)
    plt.close(fig)
    return {"plot": str(path), **summarize(curve)}
