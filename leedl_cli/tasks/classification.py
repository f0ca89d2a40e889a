"""Classification (images, any model that maps a batch of inputs to class logits): cross-entropy, accuracy."""
from __future__ import annotations

import torch
import torch.nn.functional as F
import torchmetrics

from leedl_cli.tasks.base import LeedlTask


class Classification(LeedlTask):
    def __init__(self, model, optimizer=None, scheduler=None, num_classes: int = 10, label_smoothing: float = 0.0):
        super().__init__(model, optimizer, scheduler)
        self.label_smoothing = label_smoothing
        self.acc = torch.nn.ModuleDict(
            {f"{s}_acc": torchmetrics.Accuracy(task="multiclass", num_classes=num_classes) for s in ("train", "val", "test")}
        )

    def forward(self, x):
        return self.model(x)

    def _step(self, batch, stage: str):
        x, y = batch
        logits = self.model(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        acc = self.acc[f"{stage}_acc"]
        acc(logits.detach(), y)
        on_step = stage == "train"
        self.log(f"{stage}/loss", loss, on_step=on_step, on_epoch=True, prog_bar=True, batch_size=len(y))
        self.log(f"{stage}/acc", acc, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(y))
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")
