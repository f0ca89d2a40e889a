"""What an Atari run shows (LeeDL ch. 7.2.1): the return of the training episodes against the emulator frames
played (plots/return_vs_frames.png) and one episode of the final policy as an animated GIF
(plots/greedy_episode.gif). Both written atomically; no torch import."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np

from leedl_cli.analysis.rl_plots import plot_return_vs_steps, smooth
from leedl_cli.atomic import replace_atomically, write_bytes_atomic


def plot_run_return_vs_frames(episodes: Sequence[tuple[int, float]], path: Path, random_return: float | None = None,
                              window: int = 20, title: str = "") -> Path:
    """The return of every training episode (x: env frames when it ended), its moving average over `window`
    episodes, and a random policy's mean full-game return as a line when given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.asarray([f for f, _ in episodes], dtype=float)
    y = np.asarray([r for _, r in episodes], dtype=float)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    if len(x):
        ax.plot(x, y, ".", ms=2, alpha=0.3, label="training episode (one life)")
        ax.plot(x, smooth(y, window), label=f"moving average of {window}")
    else:
        ax.text(0.5, 0.5, "no training episode ended", transform=ax.transAxes, ha="center")
    if random_return is not None:
        ax.axhline(random_return, color="grey", ls="--", label=f"random policy, full game ({random_return:.0f})")
    ax.set_xlabel("environment frames (env steps x frame skip)")
    ax.set_ylabel("episode return (game score)")
    ax.set_title(title or "return vs frames")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    replace_atomically(path, lambda f: fig.savefig(f, format="png", dpi=120), binary=True)
    plt.close(fig)
    return Path(path)


def write_gif(screens: Sequence[np.ndarray], path: Path, frame_ms: int = 40) -> Path | None:
    """An animated GIF (looping) of RGB screens [H, W, 3] uint8, written with Pillow. None without screens."""
    if not screens:
        return None
    from PIL import Image

    images = [Image.fromarray(np.asarray(s, dtype=np.uint8)) for s in screens]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=frame_ms, loop=0,
                   optimize=False)
    return write_bytes_atomic(path, buf.getvalue())


def plot_return_vs_frames(runs: list[dict], out_dir: Path, window: int = 20) -> list[Path]:
    """`leedl report` plot: the training return against env frames, mean ± std over seeds per group."""
    return plot_return_vs_steps(runs, out_dir, x="train/env_frames", window=window, filename="return_vs_frames.png",
                                title="return vs environment frames (mean ± std over seeds)")
