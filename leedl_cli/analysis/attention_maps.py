"""Heat maps of attention weights (chapter 3): one panel per head, the sentence's words on both axes."""
from __future__ import annotations

import math
from pathlib import Path

import torch


def plot_heads(weights: torch.Tensor, words: list[str], path: str | Path, title: str = "") -> Path:
    """weights [H, L, L] (row i = query word i, column j = alpha'_{i,j}) -> a PNG with one heat map per head."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    heads = weights.shape[0]
    cols = min(4, heads)
    rows = math.ceil(heads / cols)
    n = len(words)
    size = max(3.0, 0.28 * n + 1.2)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
    for h in range(rows * cols):
        ax = axes[h // cols][h % cols]
        if h >= heads:
            ax.axis("off")
            continue
        ax.imshow(weights[h, :n, :n].float().cpu().numpy(), cmap="viridis", vmin=0.0, vmax=1.0)
        ax.set_xticks(range(n))
        ax.set_yticks(range(n))
        ax.set_xticklabels(words, rotation=90, fontsize=7)
        ax.set_yticklabels(words, fontsize=7)
        ax.set_title(f"head {h + 1}", fontsize=9)
        ax.set_xlabel("key (attended to)", fontsize=7)
        ax.set_ylabel("query", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
