"""Learning curves of policy-gradient runs: episodic return vs environment steps, one line per group
(mean over seeds, shaded ± std), read from each run's metrics.csv. No torch import: `leedl report` stays fast."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


def read_return_curve(run_dir: Path, metric: str = "train/episode_return",
                      x: str = "train/env_steps") -> tuple[np.ndarray, np.ndarray]:
    """(env steps, return) pairs from the rows of metrics.csv that hold both."""
    path = Path(run_dir) / "metrics.csv"
    xs, ys = [], []
    if path.is_file():
        with open(path) as f:
            for row in csv.DictReader(f):
                if row.get(metric) not in (None, "") and row.get(x) not in (None, ""):
                    xs.append(float(row[x]))
                    ys.append(float(row[metric]))
    return np.asarray(xs), np.asarray(ys)


def smooth(y: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average over `window` points (the first points average what exists)."""
    if window <= 1 or len(y) == 0:
        return y
    c = np.cumsum(np.insert(y, 0, 0.0))
    idx = np.arange(1, len(y) + 1)
    lo = np.maximum(0, idx - window)
    return (c[idx] - c[lo]) / (idx - lo)


def plot_return_vs_steps(runs: list[dict], out_dir: Path, metric: str = "train/episode_return",
                         x: str = "train/env_steps", window: int = 10, points: int = 200,
                         filename: str = "return_vs_env_steps.png", title: str | None = None) -> list[Path]:
    """One figure: per group, the smoothed return of every seed interpolated on a common env-step grid,
    the mean drawn as a line and ± std over seeds as a band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[str, list[dict]] = {}
    for r in runs:
        if r.get("status") == "ok":
            groups.setdefault(r["group"], []).append(r)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    drawn = False
    for label, members in sorted(groups.items()):
        curves = [read_return_curve(r["_dir"], metric, x) for r in members]
        curves = [(cx, smooth(cy, window)) for cx, cy in curves if len(cx) > 1]
        if not curves:
            continue
        end = min(cx[-1] for cx, _ in curves)
        grid = np.linspace(max(cx[0] for cx, _ in curves), end, points)
        ys = np.stack([np.interp(grid, cx, cy) for cx, cy in curves])
        mean, std = ys.mean(0), ys.std(0)
        line, = ax.plot(grid, mean, label=f"{label} (n={len(curves)})")
        ax.fill_between(grid, mean - std, mean + std, color=line.get_color(), alpha=0.2)
        drawn = True
    if not drawn:
        plt.close(fig)
        return []
    ax.set_xlabel("environment steps")
    ax.set_ylabel(f"{metric} (moving average of {window})")
    ax.set_title(title or "return vs environment steps (mean ± std over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / filename
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return [path]
