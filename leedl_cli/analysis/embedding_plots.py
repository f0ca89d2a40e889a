"""Plots of contextual embeddings (ch. 5, section 5.2.2): similarity heat maps by sense, the sense gap by layer."""
from __future__ import annotations

from pathlib import Path

import torch


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    from leedl_cli.atomic import replace_atomically

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_atomically(path, lambda f: fig.savefig(f, dpi=110, format="png"), binary=True)
    _pyplot().close(fig)
    return path


def plot_similarity_maps(panels: dict[str, torch.Tensor], senses: list[str], path: str | Path,
                         title: str = "") -> Path:
    """One heat map per panel ({name: [N, N] cosine similarities}); the sentences in sense order, a line
    between the senses, the sense named at the middle of its block. One colour scale for every panel, up to 1
    (identical vectors: the control is 1 everywhere)."""
    plt = _pyplot()
    n = len(senses)
    blocks = [(s, senses.index(s), n - senses[::-1].index(s)) for s in dict.fromkeys(senses)]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.2), squeeze=False)
    low = min(float(sims.min()) for sims in panels.values())
    low, high = min(low, 0.99), 1.0
    for ax, (name, sims) in zip(axes[0], panels.items()):
        values = sims.float().cpu().numpy()
        image = ax.imshow(values, cmap="viridis", vmin=low, vmax=high, interpolation="nearest")
        for _, _, stop in blocks[:-1]:
            ax.axhline(stop - 0.5, color="white", linewidth=1.2)
            ax.axvline(stop - 0.5, color="white", linewidth=1.2)
        middles = [(a + b - 1) / 2 for _, a, b in blocks]
        ax.set_xticks(middles)
        ax.set_xticklabels([s for s, _, _ in blocks], fontsize=8)
        ax.set_yticks(middles)
        ax.set_yticklabels([s for s, _, _ in blocks], fontsize=8, rotation=90, va="center")
        ax.set_title(name, fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_gap_vs_layer(gaps: dict[str, list[float]], path: str | Path) -> Path:
    """{word: [control, layer 0, ..., layer L] sense gaps} -> one thin line per word and their mean (thick)."""
    plt = _pyplot()
    length = len(next(iter(gaps.values())))
    xs = list(range(length))
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for word, values in gaps.items():
        ax.plot(xs, values, marker=".", linewidth=1, alpha=0.7, label=word)
    mean = [sum(v[k] for v in gaps.values()) / len(gaps) for k in xs]
    ax.plot(xs, mean, color="black", linewidth=2.5, marker="o", label="mean")
    ax.axhline(0.0, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xticks(xs)
    ax.set_xticklabels(["word-piece\nembedding"] + [str(k) for k in range(length - 1)], fontsize=8)
    ax.set_xlabel("layer (0 = embedding output: word piece + position + token type)")
    ax.set_ylabel("within-sense − cross-sense cosine similarity")
    ax.set_title("sense gap of an ambiguous word's vectors, by layer", fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return _save(fig, path)
