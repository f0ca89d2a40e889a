"""Callbacks every run gets: wall-clock timings per epoch and per update."""
from __future__ import annotations

import time

import pytorch_lightning as pl


class TimingCallback(pl.Callback):
    """Measures seconds per training epoch and per optimizer update (batch start to batch end)."""

    def __init__(self) -> None:
        self.epoch_seconds: list[float] = []
        self.update_seconds_total = 0.0
        self.updates = 0
        self._epoch_start = self._batch_start = 0.0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._epoch_start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.epoch_seconds.append(time.perf_counter() - self._epoch_start)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._batch_start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.update_seconds_total += time.perf_counter() - self._batch_start
        self.updates += 1

    def summary(self) -> dict:
        epochs = self.epoch_seconds
        return {
            "epochs": len(epochs),
            "per_epoch_s": sum(epochs) / len(epochs) if epochs else None,
            "epoch_s": epochs,
            "batches": self.updates,
            "per_update_s": self.update_seconds_total / self.updates if self.updates else None,
        }
