"""Classification (images, any model that maps a batch of inputs to class logits): cross-entropy, accuracy.

Per stage (train/val/test) a torchmetrics `Accuracy` and a `MeanMetric` of the loss accumulate over the epoch
and are logged once at its end as `<stage>/acc` and `<stage>/loss` (torchmetrics syncs them across DDP
processes). The training loss of single updates is logged as `train/loss_step` on the steps that reach the
loggers (`trainer.log_every_n_steps`), which is what the training curves in metrics.csv show.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
import torchmetrics

from leedl_cli.tasks.base import LeedlTask, StagedSteps

STAGES = ("train", "val", "test")


class Classification(StagedSteps, LeedlTask):
    def __init__(self, model, optimizer=None, scheduler=None, num_classes: int = 10, label_smoothing: float = 0.0):
        super().__init__(model, optimizer, scheduler)
        self.label_smoothing = label_smoothing
        self.acc = torch.nn.ModuleDict(
            {f"{s}_acc": torchmetrics.Accuracy(task="multiclass", num_classes=num_classes) for s in STAGES}
        )
        self.mean_loss = torch.nn.ModuleDict({f"{s}_loss": torchmetrics.MeanMetric() for s in STAGES})

    def forward(self, x):
        return self.model(x)

    def _step(self, batch, stage: str):
        x, y = batch
        logits = self.model(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        self.acc[f"{stage}_acc"].update(logits.detach(), y)
        self.mean_loss[f"{stage}_loss"].update(loss.detach(), len(y))
        return loss

    def _log_epoch(self, stage: str) -> None:
        acc, loss = self.acc[f"{stage}_acc"], self.mean_loss[f"{stage}_loss"]
        if acc.update_count == 0:   # e.g. limit_val_batches=0
            return
        # compute() already gathers every DDP process's counts: the values agree on all ranks
        self.log(f"{stage}/loss", loss.compute(), prog_bar=True, sync_dist=True)
        self.log(f"{stage}/acc", acc.compute(), prog_bar=True, sync_dist=True)
        acc.reset()
        loss.reset()

    def training_step(self, batch, batch_idx):
        loss = self._step(batch, "train")
        if self.logs_this_step():
            self.log("train/loss_step", loss.detach(), on_step=True, on_epoch=False, prog_bar=True)
        return loss

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")
