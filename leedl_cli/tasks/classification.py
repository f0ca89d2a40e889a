"""Classification (images, any model that maps a batch of inputs to class logits): cross-entropy, accuracy.

Per stage (train/val/test) the number of correct predictions, the summed loss and the sample count add up
over the epoch in three tensors (a few microseconds a step), and at the epoch's end go once into torchmetrics
`MeanMetric`s weighted by the sample count, which gather every DDP process's share: `<stage>/acc` is the
fraction of correct arg-max predictions of the whole epoch (what torchmetrics' multiclass micro `Accuracy`
gives) and `<stage>/loss` the mean per-sample loss. Updating torchmetrics on every step instead costs ~80 us a
step, a few percent of a small MLP's update on a CPU. The training loss of single updates is logged as
`train/loss_step` on the steps that reach the loggers (`trainer.log_every_n_steps`), which is what the
training curves in metrics.csv show.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
import torchmetrics

from leedl_cli.tasks.base import LeedlTask, StagedSteps

STAGES = ("train", "val", "test")


class EpochTally:
    """Correct predictions, summed loss and samples of one stage, accumulated on the logits' device."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.correct: torch.Tensor | None = None
        self.loss_sum: torch.Tensor | None = None
        self.count = 0

    @torch.no_grad()
    def update(self, logits: torch.Tensor, y: torch.Tensor, loss: torch.Tensor) -> None:
        correct = (logits.argmax(dim=-1) == y).sum()
        loss_sum = loss.detach().float() * len(y)
        if self.correct is None:
            self.correct, self.loss_sum = correct, loss_sum
        else:
            self.correct += correct
            self.loss_sum += loss_sum
        self.count += len(y)


class Classification(StagedSteps, LeedlTask):
    def __init__(self, model, optimizer=None, scheduler=None, num_classes: int = 10, label_smoothing: float = 0.0):
        super().__init__(model, optimizer, scheduler)
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing
        self.tally = {s: EpochTally() for s in STAGES}
        self.acc = torch.nn.ModuleDict({f"{s}_acc": torchmetrics.MeanMetric() for s in STAGES})
        self.mean_loss = torch.nn.ModuleDict({f"{s}_loss": torchmetrics.MeanMetric() for s in STAGES})

    def forward(self, x):
        return self.model(x)

    def _step(self, batch, stage: str):
        x, y = batch
        logits = self.model(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        self.tally[stage].update(logits, y, loss)
        return loss

    def _log_epoch(self, stage: str) -> None:
        tally, acc, loss = self.tally[stage], self.acc[f"{stage}_acc"], self.mean_loss[f"{stage}_loss"]
        if tally.count == 0:   # e.g. limit_val_batches=0 (under DDP every rank has batches or none has)
            return
        acc.update(tally.correct.double() / tally.count, tally.count)
        loss.update(tally.loss_sum.double() / tally.count, tally.count)
        tally.reset()
        # compute() gathers every DDP process's weighted sums: the values agree on all ranks
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

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """A checkpoint written mid-epoch (a stopped run) keeps the epoch's training tally so far."""
        super().on_save_checkpoint(checkpoint)
        t = self.tally["train"]
        checkpoint["leedl_train_tally"] = {"correct": t.correct, "loss_sum": t.loss_sum, "count": t.count}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        saved = checkpoint.get("leedl_train_tally")
        if saved and saved["count"]:
            t = self.tally["train"]
            t.correct, t.loss_sum, t.count = saved["correct"], saved["loss_sum"], saved["count"]

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")
