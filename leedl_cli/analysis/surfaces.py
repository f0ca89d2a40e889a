"""Contour plots of an error surface with the trajectories of a sweep's runs (ch. 1.2-1.5). No torch.

Each `error_surface` run leaves `trajectory.csv` (update, w, b, loss) and `surface_grid.json` (the loss
on a grid) in its run directory; `plot_trajectories` draws every run of a sweep on one contour figure
(one line per group: optimizer / learning rate / schedule), and a second figure with the distance to the
minimum (or the loss) against the update, where oscillation, stalling and AdaGrad's bursts are visible.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def read_trajectory(run_dir: Path) -> dict[str, list[float]]:
    path = Path(run_dir) / "trajectory.csv"
    cols: dict[str, list[float]] = {}
    if not path.is_file():
        return cols
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        cols = {h: [] for h in header}
        for row in reader:
            for h, v in zip(header, row):
                cols[h].append(float(v))
    return cols


def _label(run: dict) -> str:
    return str(run.get("group") or run.get("_dir", Path(".")).name)


def plot_trajectories(runs: list[dict], out_dir: Path, surface: str | None = None, log_levels: bool = True,
                      name: str = "trajectories") -> list[Path]:
    """One contour figure of the surface with every run's path, plus distance (or loss) vs update."""
    plt = _plt()
    import numpy as np

    chosen = [r for r in runs if r.get("task") == "error_surface" and (surface is None or r.get("model") == surface)]
    chosen = [r for r in chosen if (Path(r["_dir"]) / "trajectory.csv").is_file()]
    if not chosen:
        return []
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    grid = json.loads((Path(chosen[0]["_dir"]) / "surface_grid.json").read_text())
    W, B = np.meshgrid(grid["w"], grid["b"])
    Z = np.array(grid["loss"])
    fig, ax = plt.subplots(figsize=(7, 5))
    if log_levels:
        shifted = Z - Z.min() + 1e-3
        levels = np.geomspace(shifted.min(), shifted.max(), 25)
        ax.contour(W, B, shifted, levels=levels, cmap="viridis", linewidths=0.6)
    else:
        ax.contour(W, B, Z, levels=25, cmap="viridis", linewidths=0.6)
    names = grid.get("names", ["w", "b"])
    paths = []
    for run in chosen:
        t = read_trajectory(run["_dir"])
        w, b = np.array(t[names[0]]), np.array(t[names[1]])
        ok = np.isfinite(w) & np.isfinite(b)
        ax.plot(w[ok], b[ok], "-", lw=0.9, alpha=0.85, label=_label(run))
        ax.plot(w[:1], b[:1], "ko", ms=3)
    if grid.get("minimum"):
        ax.plot([grid["minimum"][0]], [grid["minimum"][1]], "rx", ms=9, mew=2, label="minimum")
    if grid.get("local_minimum"):
        ax.plot([grid["local_minimum"][0]], [grid["local_minimum"][1]], "r+", ms=9, mew=2, label="local minimum")
    ext = grid.get("extent")
    if ext:
        ax.set_xlim(ext[0], ext[1])
        ax.set_ylim(ext[2], ext[3])
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    ax.set_title(f"{grid.get('surface', 'surface')}: trajectories")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    path = out_dir / f"{name}.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    paths.append(path)

    fig, ax = plt.subplots(figsize=(7, 4))
    has_min = bool(grid.get("minimum"))
    for run in chosen:
        t = read_trajectory(run["_dir"])
        u = np.array(t["update"]) + 1
        if has_min:
            y = np.hypot(np.array(t[names[0]]) - grid["minimum"][0], np.array(t[names[1]]) - grid["minimum"][1])
        else:
            y = np.array(t["loss"]) - Z.min()
        y = np.where(np.isfinite(y), np.maximum(y, 1e-12), np.nan)   # floored: 1e-300 would squash the plot
        ax.loglog(u, y, lw=0.9, label=_label(run))
    ax.set_xlabel("update")
    ax.set_ylabel(("distance to the minimum" if has_min else "loss - min(loss on grid)") + " (floor 1e-12)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = out_dir / f"{name}_distance.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    paths.append(path)
    return paths

