"""Checkpoints written as every leedl file that must never be half-written: to a temporary file, then renamed
(leedl_cli.atomic). A full disk or a killed process leaves the previous `last.ckpt` whole, so `resume=` still
has a checkpoint to continue from. Given to the Trainer as its CheckpointIO plugin (a public Lightning API)."""
from __future__ import annotations

from typing import Any

from pytorch_lightning.plugins.io import TorchCheckpointIO

from leedl_cli.atomic import torch_save_atomic


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        torch_save_atomic(checkpoint, path)
