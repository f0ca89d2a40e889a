"""`leedl report` plots for chapter 2's rotation_scaling preset: test accuracy against the rotation angle and
against the scale of the test images, one line per configuration (mean over seeds). Imports no torch."""
from __future__ import annotations

import re
import statistics
from pathlib import Path

ROT = re.compile(r"^test_rot([-0-9.]+)/acc$")
SCALE = re.compile(r"^test_scale([0-9.]+)/acc$")


def _curves(runs: list[dict], pattern: re.Pattern, identity: float) -> dict[str, list[tuple[float, float]]]:
    by_group: dict[str, dict[float, list[float]]] = {}
    for run in runs:
        if run.get("status") != "ok":
            continue
        metrics = run.get("metrics", {})
        points = by_group.setdefault(run["group"], {})
        if "test/acc" in metrics:
            points.setdefault(identity, []).append(float(metrics["test/acc"]))
        for name, value in metrics.items():
            m = pattern.match(name)
            if m:
                points.setdefault(float(m.group(1)), []).append(float(value))
    return {g: sorted((x, statistics.mean(v)) for x, v in pts.items()) for g, pts in by_group.items() if len(pts) > 1}


def accuracy_vs_transform(runs: list[dict], out_dir: Path, **_) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for pattern, identity, xlabel, name in ((ROT, 0.0, "rotation of the test images (+-degrees)", "acc_vs_rotation"),
                                            (SCALE, 1.0, "scale of the test images", "acc_vs_scale")):
        curves = _curves(runs, pattern, identity)
        if not curves:
            continue
        fig, ax = plt.subplots(figsize=(6, 4))
        for group, pts in sorted(curves.items()):
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=group)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = Path(out_dir) / f"{name}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths
