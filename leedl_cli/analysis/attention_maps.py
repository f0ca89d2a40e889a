"""Heat maps of attention weights (chapter 3): one panel per head, the sentence's words on both axes."""
from __future__ import annotations

import math
from pathlib import Path

import torch


def plot_heads(weights: torch.Tensor, words: list[str], path: str | Path, title: str = "",
               key_words: list[str] | None = None, query_label: str = "query",
               key_label: str = "key (attended to)") -> Path:
    """weights [H, Lq, Lk] (row i = query word i, column j = alpha'_{i,j}) -> a PNG with one heat map per head.
    Self-attention: `words` on both axes; cross-attention (chapter 4): `words` are the queries (generated
    pieces), `key_words` the keys (source pieces)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key_words = words if key_words is None else key_words
    heads, t, s = weights.shape[0], len(words), len(key_words)
    cols = min(4, heads)
    rows = math.ceil(heads / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(max(3.0, 0.28 * s + 1.4) * cols, max(3.0, 0.28 * t + 1.4) * rows),
                             squeeze=False)
    for h in range(rows * cols):
        ax = axes[h // cols][h % cols]
        if h >= heads:
            ax.axis("off")
            continue
        ax.imshow(weights[h, :t, :s].float().cpu().numpy(), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
        ax.set_xticks(range(s))
        ax.set_yticks(range(t))
        ax.set_xticklabels(key_words, rotation=90, fontsize=7)
        ax.set_yticklabels(words, fontsize=7)
        ax.set_title(f"head {h + 1}", fontsize=9)
        ax.set_xlabel(key_label, fontsize=7)
        ax.set_ylabel(query_label, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
