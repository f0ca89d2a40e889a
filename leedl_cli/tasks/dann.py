"""Domain-adversarial training (chapter 6; Ganin & Lempitsky 2015): MNIST -> MNIST-M.

mode `dann`: every batch holds labelled source images and unlabelled target images. The loss is
    L = L_y(G_y(G_f(x_s)), y_s) + domain_weight * L_d(G_d(R_lambda(G_f([x_s; x_t]))), d)
with d = 0 for source and 1 for target images, so the gradient reversal layer R makes G_f *maximise* the domain
loss that G_d minimises. lambda follows the paper's schedule lambda_p = lambda_max * (2 / (1 + exp(-gamma p)) - 1),
p the training progress from 0 to 1 (gamma = 10). With `model.domain_batch_norm=true` (not in the paper) the
source and target images go through G_f separately, each domain normalised by its own batch statistics, and the
MNIST-M test images by the target's running statistics.
mode `source_only` / `target_only`: plain classification on source (resp. labelled target) images.

Metrics: train/acc, train/domain_acc (the domain classifier's accuracy; DANN pushes it towards 0.5),
train/lambda; val/acc (the labelled training domain's held-out images); test/source_acc (MNIST test),
test/target_acc (the real MNIST-M test). With `ema_decay` (not in the paper) the test uses an exponential moving
average of the weights, theta_ema <- d * theta_ema + (1 - d) * theta after every update, and the final weights'
accuracies are kept as test/source_acc_last and test/target_acc_last. After testing, a t-SNE picture of the features of `tsne_points`
source and target test images goes to plots/tsne.png (embedding in plots/tsne.npz, which `leedl report`
draws side by side for source-only vs DANN).
"""
from __future__ import annotations

import logging
import math
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from leedl_cli.errors import LeedlError
from leedl_cli.tasks.base import LeedlTask

log = logging.getLogger(__name__)
MODES = ("source_only", "dann", "target_only")
TEST_DOMAINS = ("source", "target")   # test dataloader 0: MNIST test, 1: MNIST-M test


def dann_lambda(p: float, lambda_max: float = 1.0, gamma: float = 10.0) -> float:
    """The paper's adaptation factor: 0 at the start, rising to lambda_max as training progress p -> 1."""
    p = min(max(float(p), 0.0), 1.0)
    return lambda_max * (2.0 / (1.0 + math.exp(-gamma * p)) - 1.0)


class DomainAdversarial(LeedlTask):
    def __init__(self, model, optimizer=None, scheduler=None, mode: Literal["source_only", "dann", "target_only"] = "dann", lambda_max: float = 1.0,
                 lambda_gamma: float = 10.0, domain_weight: float = 1.0, tsne_points: int = 1000,
                 ema_decay: float | None = None) -> None:
        super().__init__(model, optimizer, scheduler)
        if mode not in MODES:
            raise LeedlError(f"task.mode={mode!r} is not accepted; accepted: {', '.join(MODES)}")
        if ema_decay is not None and not 0.0 < float(ema_decay) < 1.0:
            raise LeedlError(f"task.module.ema_decay={ema_decay!r} is not accepted: a decay d with 0 < d < 1 "
                             f"(0.999: an average over about the last 1,000 updates), or null for the final weights")
        if not hasattr(model, "domain_logits") and mode == "dann":
            raise LeedlError(f"task.mode=dann needs a model with a domain classifier (model=dann_cnn), "
                             f"not {type(model).__name__}")
        self.mode, self.lambda_max, self.lambda_gamma = mode, lambda_max, lambda_gamma
        self.domain_weight, self.tsne_points = domain_weight, tsne_points
        self.results["mode"] = mode
        self.ema: AveragedModel | None = None
        if ema_decay is not None:
            self.ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(float(ema_decay)), use_buffers=True)
            self.ema.requires_grad_(False)
            self.results["ema_decay"] = float(ema_decay)
        self._reset_tallies()

    def parameters_to_optimize(self):
        return [p for p in self.model.parameters() if p.requires_grad]   # not the moving average's copy

    def use_channels_last(self) -> None:
        super().use_channels_last()
        if self.ema is not None:
            self.ema.to(memory_format=torch.channels_last)

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        if self.ema is not None:
            self.ema.update_parameters(self.model)

    def on_fit_start(self) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        if dm is not None and hasattr(dm, "train"):
            self.results["train_images"] = int(len(dm.train[0]))
            self.results["target_train_images"] = int(len(dm.target[0])) if dm.target is not None else 0
            self.results["mnist_m_train"] = {k: dm.built_meta.get(k) for k in ("sha256", "seed", "shape", "file")}
        self.results["updates"] = int(self.num_updates())

    def _reset_tallies(self) -> None:
        self.sums = {k: 0.0 for k in ("train_correct", "train_n", "train_loss", "domain_correct", "domain_n",
                                      "val_correct", "val_n", "source_correct", "source_n", "target_correct",
                                      "target_n", "source_last_correct", "target_last_correct")}
        self.test_features: dict[str, list] = {d: [] for d in TEST_DOMAINS}
        self.test_labels: dict[str, list] = {d: [] for d in TEST_DOMAINS}

    def forward(self, x):
        return self.model(x)

    def progress(self) -> float:
        """p in [0, 1]: the fraction of the run's updates done."""
        total = max(1, self.num_updates()) if self._trainer is not None else 1
        return self.global_step / total

    # ---- training ----------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        xs, ys = batch[0], batch[1]
        if self.mode == "dann":
            xt = batch[2]
            if self.model.domain_batch_norm:   # each domain through its own batch normalisation
                f = torch.cat([self.model.features_of(xs, 0), self.model.features_of(xt, 1)])
            else:
                f = self.model.features_of(torch.cat([xs, xt]))
            logits = self.model.label_predictor(f[: len(xs)])
            lambd = dann_lambda(self.progress(), self.lambda_max, self.lambda_gamma)
            d_logits = self.model.domain_logits(f, lambd)
            d = torch.cat([torch.zeros(len(xs)), torch.ones(len(xt))]).to(d_logits)
            domain_loss = F.binary_cross_entropy_with_logits(d_logits, d)
            class_loss = F.cross_entropy(logits, ys)
            loss = class_loss + self.domain_weight * domain_loss
            with torch.no_grad():
                self.sums["domain_correct"] += float(((d_logits > 0).float() == d).sum())
                self.sums["domain_n"] += len(d)
            if self.logs_this_step():
                self.log_dict({"train/lambda": lambd, "train/domain_loss_step": domain_loss.detach(),
                               "train/class_loss_step": class_loss.detach()}, on_step=True, on_epoch=False)
        else:
            logits = self.model(xs)
            loss = class_loss = F.cross_entropy(logits, ys)
        with torch.no_grad():
            self.sums["train_correct"] += float((logits.argmax(-1) == ys).sum())
            self.sums["train_n"] += len(ys)
            self.sums["train_loss"] += float(class_loss) * len(ys)
        if self.logs_this_step():
            self.log("train/loss_step", loss.detach(), on_step=True, on_epoch=False, prog_bar=True)
        return loss

    def on_train_epoch_end(self) -> None:
        s = self.sums
        if s["train_n"]:
            self.log("train/acc", s["train_correct"] / s["train_n"], prog_bar=True)
            self.log("train/loss", s["train_loss"] / s["train_n"])
        if s["domain_n"]:
            self.log("train/domain_acc", s["domain_correct"] / s["domain_n"], prog_bar=True)
        for k in ("train_correct", "train_n", "train_loss", "domain_correct", "domain_n"):
            s[k] = 0.0

    # ---- evaluation --------------------------------------------------------------------------
    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.sums["val_correct"] += float((self.model(x).argmax(-1) == y).sum())
        self.sums["val_n"] += len(y)

    def on_validation_epoch_end(self) -> None:
        if self.sums["val_n"]:
            self.log("val/acc", self.sums["val_correct"] / self.sums["val_n"], prog_bar=True)
        self.sums["val_correct"] = self.sums["val_n"] = 0.0

    def test_step(self, batch, batch_idx, dataloader_idx: int = 0):
        x, y = batch
        domain = TEST_DOMAINS[dataloader_idx]
        # MNIST-M test images through the target's batch normalisation (domain_batch_norm), which only DANN trains
        bn_domain = int(domain == "target" and self.mode == "dann")
        model = self.model
        if self.ema is not None:   # the averaged weights are the ones tested; the final weights' accuracy beside
            last = self.model.label_predictor(self.model.features_of(x, bn_domain))
            self.sums[f"{domain}_last_correct"] += float((last.argmax(-1) == y).sum())
            model = self.ema.module
        f = model.features_of(x, bn_domain)
        logits = model.label_predictor(f)
        self.sums[f"{domain}_correct"] += float((logits.argmax(-1) == y).sum())
        self.sums[f"{domain}_n"] += len(y)
        have = sum(len(t) for t in self.test_features[domain])
        if have < self.tsne_points:
            self.test_features[domain].append(f[: self.tsne_points - have].float().cpu())   # bf16 under autocast
            self.test_labels[domain].append(y[: self.tsne_points - have].cpu())

    def on_test_epoch_end(self) -> None:
        for domain in TEST_DOMAINS:
            n = self.sums[f"{domain}_n"]
            if n:
                acc = self.sums[f"{domain}_correct"] / n
                self.log(f"test/{domain}_acc", acc, add_dataloader_idx=False)
                if self.ema is not None:
                    self.log(f"test/{domain}_acc_last", self.sums[f"{domain}_last_correct"] / n, add_dataloader_idx=False)
                self.results[f"test_{domain}_images"] = int(n)
            self.sums[f"{domain}_correct"] = self.sums[f"{domain}_n"] = self.sums[f"{domain}_last_correct"] = 0.0
        if self.tsne_points and self.run_dir is not None and all(self.test_features[d] for d in TEST_DOMAINS):
            self.results["tsne"] = self.draw_tsne()

    def draw_tsne(self) -> str:
        """t-SNE of the test features, source vs target (the book's picture of the two distributions)."""
        from leedl_cli.analysis.dann_tsne import embed, plot_embedding

        feats = [torch.cat(self.test_features[d]).numpy() for d in TEST_DOMAINS]
        labels = [torch.cat(self.test_labels[d]).numpy() for d in TEST_DOMAINS]
        domain = np.concatenate([np.full(len(f), i) for i, f in enumerate(feats)])
        xy = embed(np.concatenate(feats), seed=0)
        out = self.plots_dir()
        np.savez_compressed(out / "tsne.npz", xy=xy, domain=domain, label=np.concatenate(labels), mode=self.mode)
        path = out / "tsne.png"
        plot_embedding(xy, domain, f"{self.mode}: t-SNE of G_f features", path)
        return str(path)
