"""Checkpoints written as every leedl file that must never be half-written: to a temporary file, then renamed
(leedl_cli.atomic). A full disk or a killed process leaves the previous `last.ckpt` whole, so `resume=` still
has a checkpoint to continue from. Given to the Trainer as its CheckpointIO plugin (a public Lightning API)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pytorch_lightning.plugins.io import TorchCheckpointIO

from leedl_cli.atomic import torch_save_atomic


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        torch_save_atomic(checkpoint, path)


TRAINING_STATE = ("optimizer_states", "lr_schedulers")


def keep_weights_of_finished_run(folder: Path, best: str | None) -> str | None:
    """A finished run cannot be resumed, so it keeps weights, not training state: `last.ckpt` without the
    optimizer's and schedulers' state, and the best epoch's file only when it is another epoch than the last.
    Returns the checkpoint that now holds the best weights (None: no best checkpoint)."""
    import torch

    last = folder / "last.ckpt"
    if not last.is_file():
        return best
    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    if any(k in ckpt for k in TRAINING_STATE):
        torch_save_atomic({k: v for k, v in ckpt.items() if k not in TRAINING_STATE}, last)
    if best and Path(best).is_file() and Path(best) != last:
        other = torch.load(best, map_location="cpu", weights_only=False)
        if (other.get("epoch"), other.get("global_step")) == (ckpt.get("epoch"), ckpt.get("global_step")):
            Path(best).unlink()
            return str(last)
    return best


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())
