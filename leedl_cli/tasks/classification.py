"""Classification (images, any model that maps a batch of inputs to class logits): cross-entropy, accuracy.

Per stage (train/val/test) the number of correct predictions, the summed loss and the sample count add up
over the epoch in three tensors (a few microseconds a step), and at the epoch's end go once into torchmetrics
`MeanMetric`s weighted by the sample count, which gather every DDP process's share: `<stage>/acc` is the
fraction of correct arg-max predictions of the whole epoch (what torchmetrics' multiclass micro `Accuracy`
gives) and `<stage>/loss` the mean per-sample loss. Updating torchmetrics on every step instead costs ~80 us a
step, a few percent of a small MLP's update on a CPU. The training loss of single updates is logged as
`train/loss_step` on the steps that reach the loggers (`trainer.log_every_n_steps`), which is what the
training curves in metrics.csv show.

`ImageClassification` is the task of the image data sets (`leedl_cli.data.images.ImageSpec`): before training it
records the activation values one training image creates (`activations_per_image`); after the test epoch it
evaluates the transformed test sets the data provides (the test images rotated / scaled, chapter 2) and logs
each as `<name>/acc` (e.g. `test_rot30/acc`). With `plots: true` the run draws what the network learned into
plots/ (`leedl_cli.analysis.cnn_plots`): first-layer filters, the feature maps of one test image, and for a
spatial transformer what it does to rotated test images.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Callable

import torch
import torch.nn.functional as F
import torchmetrics

from leedl_cli.contract import Probability, Provided
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
    """Any model that maps a batch of inputs to class logits: cross-entropy, accuracy per epoch."""

    def __init__(self, model, optimizer=None, scheduler=None, run_dir: Path | None = None,
                 label_smoothing: Annotated[float, Probability] = 0.0):
        super().__init__(model, optimizer, scheduler, run_dir=run_dir)
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


class ImageClassification(Classification):
    """Classification of the images of an `ImageSpec`, with its transformed test sets and pictures."""

    def __init__(self, model, optimizer=None, scheduler=None, run_dir: Path | None = None,
                 label_smoothing: Annotated[float, Probability] = 0.0, plots: bool = False,
                 train_images: Provided[Callable[[], torch.Tensor] | None] = None,
                 test_images: Provided[Callable[[], tuple] | None] = None,
                 transformed_test_sets: Provided[Callable[..., dict] | None] = None,
                 eval_batch_size: Provided[int] = 1000, background: Provided[float] = 0.0):
        super().__init__(model, optimizer, scheduler, run_dir=run_dir, label_smoothing=label_smoothing)
        self.plots = plots
        self.train_images, self.test_images = train_images, test_images
        self.transformed_test_sets = transformed_test_sets
        self.eval_batch_size, self.background = eval_batch_size, background

    def on_fit_start(self) -> None:
        """Record the activation values one input creates (every module's output, for the memory comparison of
        pooling vs strided convolutions), from one forward pass in eval mode."""
        if self.train_images is None:
            return
        sizes: list[int] = []
        leaves = [m for m in self.model.modules() if not list(m.children())]
        handles = [m.register_forward_hook(lambda m, i, o: sizes.append(o.numel()) if torch.is_tensor(o) else None)
                   for m in leaves]
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad():
            self.model(self.train_images()[:1].to(self.device))
        self.model.train(was_training)
        for h in handles:
            h.remove()
        self.results["activations_per_image"] = int(sum(sizes))

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        if not self.transformed_test_sets:
            return
        # the images the test pass saw (all of them, unless trainer.limit_test_batches cut it: debug=smoke)
        seen = sum(self.trainer.num_test_batches) * self.eval_batch_size
        limit = int(seen) if math.isfinite(seen) else None
        for name, (x, y) in self.transformed_test_sets(limit).items():
            self.log(f"{name}/acc", self.accuracy_on(x, y, self.eval_batch_size))

    @torch.no_grad()
    def accuracy_on(self, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
        """Fraction of correct arg-max predictions on (x, y), in eval mode."""
        correct = 0
        for i in range(0, len(x), batch_size):
            logits = self.model(x[i:i + batch_size].to(self.device))
            correct += int((logits.argmax(-1).cpu() == y[i:i + batch_size]).sum())
        return correct / max(1, len(x))

    def on_test_end(self) -> None:
        if not self.plots or self.run_dir is None or self.test_images is None or self.trainer.global_rank != 0:
            return
        from leedl_cli.analysis.cnn_plots import draw_cnn_plots

        self.results["plots"] = draw_cnn_plots(self.model, self.test_images(), self.plots_dir(), self.background)
