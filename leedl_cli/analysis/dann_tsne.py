"""Chapter 6 picture: t-SNE of the feature extractor's output for source (MNIST) and target (MNIST-M) test
images, source-only training vs domain-adversarial training (the two clouds overlap after DANN)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from leedl_cli.atomic import replace_atomically

DOMAIN_NAMES = ("source (MNIST)", "target (MNIST-M)")
COLORS = ("tab:blue", "tab:red")


def embed(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """2-D t-SNE (scikit-learn) of [N, D] features."""
    from sklearn.manifold import TSNE

    perplexity = float(min(30.0, max(2.0, (len(features) - 1) / 3)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(
        features.astype(np.float32))


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _draw(ax, xy: np.ndarray, domain: np.ndarray, title: str) -> None:
    for i, (name, color) in enumerate(zip(DOMAIN_NAMES, COLORS)):
        m = domain == i
        ax.scatter(xy[m, 0], xy[m, 1], s=3, c=color, alpha=0.5, label=f"{name}, n={int(m.sum())}")
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(loc="best", markerscale=4, fontsize=8)


def plot_embedding(xy: np.ndarray, domain: np.ndarray, title: str, path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 5))
    _draw(ax, xy, domain, title)
    fig.tight_layout()
    replace_atomically(path, lambda f: fig.savefig(f, format="png", dpi=120), binary=True)
    plt.close(fig)
    return path


def report_tsne(runs: list[dict], out_dir: Path) -> list[Path]:
    """`leedl report` plot (report.plots): source-only vs DANN t-SNE side by side, from the lowest seed of each."""
    panels = []
    for mode in ("source_only", "dann"):
        candidates = sorted((r for r in runs if str(r.get("_dir")) and _mode(r) == mode), key=lambda r: r.get("seed", 0))
        for r in candidates:
            f = Path(r["_dir"]) / "plots" / "tsne.npz"
            if f.is_file():
                panels.append((mode, r.get("seed"), np.load(f)))
                break
    if not panels:
        return []
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 5), squeeze=False)
    for ax, (mode, seed, z) in zip(axes[0], panels):
        _draw(ax, z["xy"], z["domain"], f"{mode.replace('_', '-')} (seed {seed})")
    fig.tight_layout()
    path = out_dir / "tsne_source_only_vs_dann.png"
    replace_atomically(path, lambda f: fig.savefig(f, format="png", dpi=120), binary=True)
    plt.close(fig)
    return [path]


def _mode(run: dict) -> str | None:
    for o in run.get("overrides") or []:
        if o.startswith("task.mode="):
            return o.split("=", 1)[1]
    return run.get("mode")
