"""Fig 1.6: training loss against the minimum ratio of each trained network (no torch)."""
from __future__ import annotations

from pathlib import Path


def plot_minimum_ratio(runs: list[dict], out_dir: Path, name: str = "minimum_ratio") -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [(r["minimum_ratio"], r["training_loss"], r.get("grad_norm_after")) for r in runs
           if r.get("status") == "ok" and r.get("minimum_ratio") is not None and r.get("training_loss") is not None]
    if not pts:
        return []
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    sc = ax.scatter([p[0] for p in pts], [p[1] for p in pts], c=[p[2] or 0 for p in pts], cmap="viridis", s=25)
    fig.colorbar(sc, ax=ax, label="|grad L| at the end")
    ax.set_xlabel("minimum ratio = n_positive / n_parameters")
    ax.set_ylabel("training loss")
    ax.set_title("Fig 1.6: training loss vs minimum ratio")
    fig.tight_layout()
    path = out_dir / f"{name}.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return [path]
