"""Domain-adversarial training (chapter 6; Ganin & Lempitsky 2015): MNIST -> MNIST-M.

mode `dann`: every batch holds labelled source images and unlabelled target images. The loss is
    L = L_y(G_y(G_f(x_s)), y_s) + domain_weight * L_d(G_d(R_lambda(G_f([x_s; x_t]))), d)
with d = 0 for source and 1 for target images, so the gradient reversal layer R makes G_f *maximise* the domain
loss that G_d minimises. lambda follows the paper's schedule lambda_p = lambda_max * (2 / (1 + exp(-gamma p)) - 1),
p the training progress from 0 to 1 (gamma = 10). With `model.domain_batch_norm=true` (not in the paper) the
source and target images go through G_f separately, each domain normalised by its own batch statistics, and the
MNIST-M test images by the target's running statistics.
mode `source_only` / `target_only`: plain classification on source (resp. labelled target) images.
Beyond DANN (sections 6.2-6.3, leedl_cli.tasks.domain_shift):
- `target_entropy_weight` > 0 (mode dann): + weight * H(G_y(G_f(x_t))), the label predictor's entropy on the
  target images (away from the boundary; DIRT-T/VADA);
- mode `finetune`: source-only training for the run's epochs, then `finetune_steps` updates on the data's
  `target_labels` labelled MNIST-M training images, the real-test accuracy measured every `finetune_eval_every`
  updates (metrics.csv `finetune/target_test_acc`, plots/finetune_curve.png); the fine-tuned weights are tested
  (task.test_weights=last). `weights_from` (a run directory or .ckpt) starts from a trained model's weights
  (with trainer.max_epochs=0: fine-tuning only);
- mode `ttt`: source training plus `rotation_weight` * the rotation-prediction loss on source images (model with
  `rotation_head`); at test, each MNIST-M test batch of `ttt_batch_size` is adapted to by `ttt_steps` SGD steps
  on its rotation loss before it is classified, G_f restored after each batch (`ttt_online`: not restored);
  test/target_acc_before_ttt is the same model without the adaptation;
- mode `generalization`: source-only training on augmented MNIST (the data's; nothing of MNIST-M is seen).

Metrics: train/acc, train/domain_acc (the domain classifier's accuracy; DANN pushes it towards 0.5),
train/lambda; val/acc (the labelled training domain's held-out images); test/<domain>_acc for each test set the
data provides: test/source_acc (MNIST test), test/target_acc (the real MNIST-M test). Under DDP the counts of
every process are summed. Which weights are tested is the run's `task.test_weights` (task=dann: `ema`, a moving
average of the weights, leedl_cli.ema; `last`: the final weights). After testing, a t-SNE picture of the
features of `tsne_points` source and target test images goes to plots/tsne.png (embedding in plots/tsne.npz,
which `leedl report` draws side by side for source-only vs DANN).
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
import torch.nn.functional as F

from leedl_cli.atomic import replace_atomically
from leedl_cli.contract import AtLeastOne, NonNegative, Positive, Provided
from leedl_cli.data.mnist_m import TEST_DOMAINS, Mode
from leedl_cli.errors import LeedlError
from leedl_cli.tasks.base import LeedlTask
from leedl_cli.tasks.domain_shift.objectives import ROTATIONS, prediction_entropy, rotation_loss
from leedl_cli.tasks.domain_shift.ttt import TestTimeTraining

log = logging.getLogger(__name__)
TRAIN_TALLIES = ("train_correct", "train_n", "train_loss", "domain_correct", "domain_n")


def dann_lambda(p: float, lambda_max: float = 1.0, gamma: float = 10.0) -> float:
    """The paper's adaptation factor: 0 at the start, rising to lambda_max as training progress p -> 1."""
    p = min(max(float(p), 0.0), 1.0)
    return lambda_max * (2.0 / (1.0 + math.exp(-gamma * p)) - 1.0)


class DomainAdversarial(LeedlTask):
    def __init__(self, model, optimizer=None, scheduler=None, run_dir: Path | None = None, mode: Mode = "dann",
                 lambda_max: Annotated[float, NonNegative] = 1.0, lambda_gamma: Annotated[float, NonNegative] = 10.0,
                 domain_weight: Annotated[float, NonNegative] = 1.0, tsne_points: Annotated[int, NonNegative] = 1000,
                 target_entropy_weight: Annotated[float, NonNegative] = 0.0,
                 rotation_weight: Annotated[float, NonNegative] = 1.0, ttt_steps: Annotated[int, NonNegative] = 3,
                 ttt_lr: Annotated[float, Positive] = 0.005, ttt_batch_size: Annotated[int, AtLeastOne] = 16,
                 ttt_online: bool = False, finetune_steps: Annotated[int, NonNegative] = 300,
                 finetune_lr: Annotated[float, Positive] = 0.01, finetune_batch_size: Annotated[int, AtLeastOne] = 64,
                 finetune_eval_every: Annotated[int, AtLeastOne] = 10, weights_from: str | None = None,
                 test_domains: Provided[tuple[str, ...]] = TEST_DOMAINS,
                 data_record: Provided[dict[str, Any] | None] = None,
                 labelled_target: Provided[tuple[torch.Tensor, torch.Tensor] | None] = None,
                 target_test: Provided[tuple[torch.Tensor, torch.Tensor] | None] = None) -> None:
        super().__init__(model, optimizer, scheduler, run_dir=run_dir)
        if not hasattr(model, "domain_logits") and mode == "dann":
            raise LeedlError(f"task.mode=dann needs a model with a domain classifier (model=dann_cnn), "
                             f"not {type(model).__name__}")
        if mode == "ttt" and getattr(model, "rotation_predictor", None) is None:
            raise LeedlError("task.mode=ttt needs a model with a rotation head: add model.rotation_head=true")
        if mode == "finetune" and (labelled_target is None or target_test is None):
            raise LeedlError("task.mode=finetune needs labelled target images: set task.data.target_labels")
        self.mode, self.lambda_max, self.lambda_gamma = mode, lambda_max, lambda_gamma
        self.domain_weight, self.tsne_points = domain_weight, tsne_points
        self.target_entropy_weight, self.rotation_weight = target_entropy_weight, rotation_weight
        self.ttt = TestTimeTraining(ttt_steps, ttt_lr, ttt_batch_size, ttt_online) if mode == "ttt" else None
        self.finetune_options = {"steps": finetune_steps, "lr": finetune_lr, "batch_size": finetune_batch_size,
                                 "eval_every": finetune_eval_every}
        self.labelled_target, self.target_test = labelled_target, target_test
        self._finetuned: float | None = None   # a fingerprint of the fine-tuned weights (the ones to test)
        self.test_domains = tuple(test_domains)
        self.results.update(mode=mode, **(data_record or {}))
        if weights_from:
            from leedl_cli.checkpoints import load_model_weights

            self.results["weights_from"] = str(load_model_weights(self.model, weights_from))
        self._resumed_tallies: dict | None = None
        self._reset_tallies()

    @classmethod
    def config_problems(cls, options: dict) -> list[str]:
        weight, mode = options.get("target_entropy_weight"), options.get("mode")
        if isinstance(weight, (int, float)) and weight > 0 and mode != "dann":
            return [f"target_entropy_weight={weight}: expected 0 with mode={mode} (the entropy on unlabelled target "
                    f"images is a term of DANN's loss: mode=dann)"]
        return []

    def on_fit_start(self) -> None:
        if self.mode == "finetune":
            from leedl_cli.ema import EMAWeights

            if any(isinstance(c, EMAWeights) for c in self.trainer.callbacks):
                raise LeedlError("task.mode=finetune tests the fine-tuned weights, not a moving average of the "
                                 "source training's: set task.test_weights=last")
        updates = self.num_updates()
        if updates is None:
            raise LeedlError("task=dann: lambda rises over the run's length, which is not set "
                             "(trainer.max_epochs=-1); set trainer.max_epochs or trainer.max_steps")
        self.results["updates"] = updates

    def _reset_tallies(self) -> None:
        self.sums = {k: 0.0 for k in (*TRAIN_TALLIES, "val_correct", "val_n", "before_ttt_correct")}
        self.sums.update({f"{d}_{k}": 0.0 for d in self.test_domains for k in ("correct", "n")})
        self.test_features: dict[str, list] = {d: [] for d in self.test_domains}
        self.test_labels: dict[str, list] = {d: [] for d in self.test_domains}

    def _summed(self, *keys: str) -> list[float]:
        """The tallies `keys`, summed over every DDP process (as they are in one process): the values logged from
        them are the same on every process (`sync_dist=True` then averages equal numbers)."""
        values = torch.tensor([self.sums[k] for k in keys], dtype=torch.float64, device=self.device)
        if self._trainer is not None and self.trainer.world_size > 1:
            values = self.trainer.strategy.reduce(values, reduce_op="sum")
        return values.tolist()

    def forward(self, x):
        return self.model(x)

    def progress(self) -> float:
        """p in [0, 1]: the fraction of the run's updates done."""
        total = max(1, self.num_updates() or 1) if self._trainer is not None else 1
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
            if self.target_entropy_weight:   # away from the boundary: confident predictions on the target
                entropy = prediction_entropy(self.model.label_predictor(f[len(xs):]))
                loss = loss + self.target_entropy_weight * entropy
                if self.logs_this_step():
                    self.log("train/target_entropy_step", entropy.detach(), on_step=True, on_epoch=False)
            with torch.no_grad():
                self.sums["domain_correct"] += float(((d_logits > 0).float() == d).sum())
                self.sums["domain_n"] += len(d)
            if self.logs_this_step():
                self.log_dict({"train/lambda": lambd, "train/domain_loss_step": domain_loss.detach(),
                               "train/class_loss_step": class_loss.detach()}, on_step=True, on_epoch=False)
        else:
            logits = self.model(xs)
            loss = class_loss = F.cross_entropy(logits, ys)
            if self.mode == "ttt":   # joint training: the rotation task on the same source images
                k = torch.randint(0, ROTATIONS, (len(xs),), device=xs.device)
                rot_loss, rot_correct = rotation_loss(self.model, xs, k)
                loss = loss + self.rotation_weight * rot_loss
                self.sums["domain_correct"] += float(rot_correct)
                self.sums["domain_n"] += len(xs)
        with torch.no_grad():
            self.sums["train_correct"] += float((logits.argmax(-1) == ys).sum())
            self.sums["train_n"] += len(ys)
            self.sums["train_loss"] += float(class_loss) * len(ys)
        if self.logs_this_step():
            self.log("train/loss_step", loss.detach(), on_step=True, on_epoch=False, prog_bar=True)
        return loss

    def on_train_epoch_end(self) -> None:
        correct, n, loss, domain_correct, domain_n = self._summed(*TRAIN_TALLIES)
        if n:
            self.log("train/acc", correct / n, prog_bar=True, sync_dist=True)
            self.log("train/loss", loss / n, sync_dist=True)
        if domain_n:   # mode ttt: the rotation head's accuracy
            name = "train/rotation_acc" if self.mode == "ttt" else "train/domain_acc"
            self.log(name, domain_correct / domain_n, prog_bar=True, sync_dist=True)
        for k in TRAIN_TALLIES:
            self.sums[k] = 0.0

    # A checkpoint keeps the epoch's training tallies so far; a run resumed in that same epoch (stopped
    # mid-epoch) goes on adding to them, one resumed at the next epoch starts from zero.
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["leedl_dann_tallies"] = {"epoch": self.current_epoch, **{k: self.sums[k] for k in TRAIN_TALLIES}}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        self._resumed_tallies = checkpoint.get("leedl_dann_tallies")

    def on_train_epoch_start(self) -> None:
        saved, self._resumed_tallies = self._resumed_tallies, None
        if saved is not None and saved["epoch"] == self.current_epoch:
            self.sums.update({k: saved[k] for k in TRAIN_TALLIES})

    # ---- a few target labels: after the source training ---------------------------------------
    def on_fit_end(self) -> None:
        if self.mode != "finetune" or self.diverged:
            return
        from leedl_cli.tasks.domain_shift.finetune import finetune, save_curve

        o = self.finetune_options
        optimizer = self.optimizer_factory(self.model.parameters(), lr=o["lr"])
        seed = int(torch.initial_seed()) % (2**31)
        curve = finetune(self.model, optimizer, self.labelled_target, self.target_test, o["steps"],
                         o["batch_size"], o["eval_every"], seed=seed)
        for row in curve:
            for lg in self.loggers:
                lg.log_metrics({"finetune/target_test_acc": row["target_test_acc"], "finetune/epoch": row["epoch"],
                                "finetune/step": row["step"]}, step=self.global_step + row["step"])
        self.results["finetune"] = {"labels": len(self.labelled_target[1]), "steps": o["steps"], "lr": o["lr"],
                                    "curve": [(r["step"], round(r["target_test_acc"], 4)) for r in curve]}
        if self.run_dir is not None and self.trainer.is_global_zero:
            self.results["finetune"].update(save_curve(curve, self.plots_dir(), len(self.labelled_target[1])))
        self._finetuned = self._fingerprint()

    def _fingerprint(self) -> float:
        return float(sum(p.detach().double().sum() for p in self.model.parameters()))

    def on_test_start(self) -> None:
        if self._finetuned is not None and self._fingerprint() != self._finetuned:
            raise LeedlError("task.mode=finetune: the weights about to be tested are not the fine-tuned ones "
                             "(a checkpoint or a moving average of the source training): set task.test_weights=last")

    # ---- evaluation --------------------------------------------------------------------------
    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.sums["val_correct"] += float((self.model(x).argmax(-1) == y).sum())
        self.sums["val_n"] += len(y)

    def on_validation_epoch_end(self) -> None:
        correct, n = self._summed("val_correct", "val_n")
        if n:
            self.log("val/acc", correct / n, prog_bar=True, sync_dist=True)
        self.sums["val_correct"] = self.sums["val_n"] = 0.0

    def test_step(self, batch, batch_idx, dataloader_idx: int = 0):
        x, y = batch
        domain = self.test_domains[dataloader_idx]
        # MNIST-M test images through the target's batch normalisation (domain_batch_norm), which only DANN trains
        bn_domain = int(domain == "target" and self.mode == "dann")
        f = self.model.features_of(x, bn_domain)
        logits = self.model.label_predictor(f)
        if self.ttt is not None and domain == "target":   # test-time training on each small batch of test images
            self.sums["before_ttt_correct"] += float((logits.argmax(-1) == y).sum())
            logits = self.ttt.adapt_and_classify(self.model, x, bn_domain)
        self.sums[f"{domain}_correct"] += float((logits.argmax(-1) == y).sum())
        self.sums[f"{domain}_n"] += len(y)
        have = sum(len(t) for t in self.test_features[domain])
        if have < self.tsne_points:
            self.test_features[domain].append(f[: self.tsne_points - have].float().cpu())   # bf16 under autocast
            self.test_labels[domain].append(y[: self.tsne_points - have].cpu())

    def on_test_epoch_end(self) -> None:
        for domain in self.test_domains:
            correct, n = self._summed(f"{domain}_correct", f"{domain}_n")
            if n:
                self.log(f"test/{domain}_acc", correct / n, add_dataloader_idx=False, sync_dist=True)
                self.results[f"test_{domain}_images"] = int(n)
            self.sums[f"{domain}_correct"] = self.sums[f"{domain}_n"] = 0.0
            if self.ttt is not None and domain == "target" and n:
                (before,) = self._summed("before_ttt_correct")
                self.log("test/target_acc_before_ttt", before / n, add_dataloader_idx=False, sync_dist=True)
                self.sums["before_ttt_correct"] = 0.0
        if (self.tsne_points and self.run_dir is not None and self.trainer.is_global_zero
                and all(self.test_features[d] for d in self.test_domains)):
            self.results["tsne"] = self.draw_tsne()

    def draw_tsne(self) -> str:
        """t-SNE of the test features, source vs target (the book's picture of the two distributions)."""
        from leedl_cli.analysis.dann_tsne import embed, plot_embedding

        feats = [torch.cat(self.test_features[d]).numpy() for d in self.test_domains]
        labels = [torch.cat(self.test_labels[d]).numpy() for d in self.test_domains]
        domain = np.concatenate([np.full(len(f), i) for i, f in enumerate(feats)])
        xy = embed(np.concatenate(feats), seed=0)
        out = self.plots_dir()
        replace_atomically(out / "tsne.npz", lambda f: np.savez_compressed(
            f, xy=xy, domain=domain, label=np.concatenate(labels), mode=self.mode), binary=True)
        path = out / "tsne.png"
        plot_embedding(xy, domain, f"{self.mode}: t-SNE of G_f features", path)
        return str(path)
