"""The plots of a translation run (chapter 4): validation BLEU against the wall time of fitting, and the
decoder's cross-attention over one test sentence (one panel per head, one file per layer)."""
from __future__ import annotations

from pathlib import Path

import torch


def plot_bleu_curve(curve: list[dict], path, title: str = "validation BLEU (greedy) against training time") -> Path:
    """One point per validation pass: minutes of fitting on x, BLEU on y, each point labelled with its epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    minutes, bleu = [c["minutes"] for c in curve], [c["val_bleu"] for c in curve]
    ax.plot(minutes, bleu, marker="o")
    for c in curve:
        ax.annotate(f"ep {c['epoch'] + 1}", (c["minutes"], c["val_bleu"]), textcoords="offset points",
                    xytext=(0, 6), ha="center", fontsize=7)
    ax.set_xlabel("wall time of fitting (minutes)")
    ax.set_ylabel("validation BLEU")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_cross_attention(weights: torch.Tensor, src_words: list[str], tgt_words: list[str], path,
                         title: str = "") -> Path:
    """weights [H, T, S] (row t = target piece t, column s = source piece s) -> one heat map per head."""
    from leedl_cli.analysis.attention_maps import plot_heads

    return plot_heads(weights, tgt_words, path, title, key_words=src_words, query_label="generated piece",
                      key_label="source piece")
