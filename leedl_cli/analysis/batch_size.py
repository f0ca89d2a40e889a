"""Figs 1.9-1.10: time per update and per epoch against batch size, from results.json timings (no torch)."""
from __future__ import annotations

import csv
import math
from pathlib import Path


def _batch_size(run: dict):
    for item in run.get("overrides", []):
        key, _, value = item.partition("=")
        if key.lstrip("+") == "task.data.batch_size":
            return int(value)
    return None


def plot_time_vs_batch_size(runs: list[dict], out_dir: Path, n_train: int = 60000, name: str = "batch_size_time") -> list[Path]:
    """Time per update (measured) and per epoch (per update x ceil(n_train / B)); also writes NAME.csv."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = []
    for run in runs:
        b, t = _batch_size(run), (run.get("timings") or {}).get("per_update_s")
        if run.get("status") == "ok" and b and t:
            rows.append((b, t, t * math.ceil(n_train / b)))
    if not rows:
        return []
    rows.sort()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / f"{name}.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["batch_size", "per_update_s", "per_epoch_s"])
        writer.writerows(rows)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, col, title in ((axes[0], 1, "time per update (s)"), (axes[1], 2, "time per epoch (s)")):
        ax.loglog([r[0] for r in rows], [r[col] for r in rows], "o-")
        ax.set_xlabel("batch size")
        ax.set_ylabel(title)
        ax.grid(True, which="both", alpha=0.3)
    axes[1].set_title(f"epoch = ceil({n_train} / B) updates")
    fig.tight_layout()
    path = out_dir / f"{name}.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return [path]
