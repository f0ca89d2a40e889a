"""Label shift and its correction (ch. 6, section 6.1): a classifier trained on one set of class proportions,
tested on another, and the test proportions re-estimated from the unlabelled test images.

A classifier's posterior p_s(y|x) carries the training priors p_s(y). When the test priors q(y) differ and p(x|y)
does not, the test posterior is p_s(y|x) q(y) / p_s(y), renormalised. q is unknown, but the EM procedure of
Saerens, Latinne & Decaestecker (2002) estimates it from the test images alone: start from q = p_s; E-step:
adjust every test image's posterior with the current q; M-step: q = the mean adjusted posterior; repeat until q
stops moving (`em_iterations` at most). EM needs calibrated probabilities: with `calibration: temperature` one
temperature T is chosen on the validation set (the source distribution) to minimise its negative log-likelihood
(a grid of 241 values from 0.25 to 16, log-spaced) and the test logits are divided by it first.

After the test epoch the task logs, beside the plain `test/acc`:
- `test/acc_em`: accuracy with the EM-adjusted posteriors; `test/em_gain` = acc_em - acc;
- `test/acc_oracle`: adjusted with the true test priors (the best this correction can do);
- `test/prior_l1_source`, `test/prior_l1_em`: L1 distance of the training priors and of EM's estimate from the true
  test priors, and `test/prior_error_ratio` = their ratio (below 1: the estimate is closer than no estimate);
- `test/temperature`;
and writes the three prior vectors, EM's iterations and per-class accuracy to results.json (`label_shift`) and
`plots/priors.png` (training, true test and estimated priors per class).
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Callable, Literal

import torch
import torch.nn.functional as F

from leedl_cli.contract import AtLeastOne, Probability, Provided
from leedl_cli.tasks.classification import ImageClassification

Calibration = Literal["none", "temperature"]
TEMPERATURES = torch.logspace(-2, 4, 241, base=2.0)   # 0.25 ... 16


def em_priors(probs: torch.Tensor, source: torch.Tensor, iterations: int = 100,
              tol: float = 1e-8) -> tuple[torch.Tensor, int]:
    """(the test priors EM estimates from posteriors `probs` [N, C] made under `source` priors [C], iterations)."""
    q = source.clone()
    for i in range(1, iterations + 1):
        new = adjust(probs, source, q).mean(0)
        moved = float((new - q).abs().max())
        q = new
        if moved < tol:
            return q, i
    return q, iterations


def adjust(probs: torch.Tensor, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Posteriors made under `source` priors, moved to `target` priors: p(y|x) q(y) / p_s(y), renormalised."""
    w = probs * (target / source.clamp_min(1e-12))
    return w / w.sum(1, keepdim=True).clamp_min(1e-30)


def fit_temperature(logits: torch.Tensor, y: torch.Tensor) -> float:
    """The temperature of TEMPERATURES with the lowest negative log-likelihood of (logits / T, y)."""
    nll = torch.stack([F.cross_entropy(logits / t, y) for t in TEMPERATURES])
    return float(TEMPERATURES[int(nll.argmin())])


class LabelShiftClassification(ImageClassification):
    """Image classification under label shift: plain, EM-corrected and oracle-corrected test accuracy."""

    def __init__(self, model, optimizer=None, scheduler=None, run_dir: Path | None = None,
                 label_smoothing: Annotated[float, Probability] = 0.0, plots: bool = False,
                 calibration: Calibration = "temperature", em_iterations: Annotated[int, AtLeastOne] = 100,
                 source_priors: Provided[tuple] = (), target_priors: Provided[tuple] = (),
                 val_set: Provided[Callable[[], tuple] | None] = None,
                 train_images: Provided[Callable[[], torch.Tensor] | None] = None,
                 test_images: Provided[Callable[[], tuple] | None] = None,
                 transformed_test_sets: Provided[Callable[..., dict] | None] = None,
                 eval_batch_size: Provided[int] = 1000, background: Provided[float] = 0.0):
        super().__init__(model, optimizer, scheduler, run_dir=run_dir, label_smoothing=label_smoothing, plots=plots,
                         train_images=train_images, test_images=test_images,
                         transformed_test_sets=transformed_test_sets, eval_batch_size=eval_batch_size,
                         background=background)
        self.calibration, self.em_iterations = calibration, int(em_iterations)
        self.source_priors = torch.tensor(source_priors, dtype=torch.float64)
        self.target_priors = torch.tensor(target_priors, dtype=torch.float64)
        self.val_set = val_set
        self._test_logits: list[torch.Tensor] = []
        self._test_labels: list[torch.Tensor] = []

    def _step(self, batch, stage: str):
        if stage != "test":
            return super()._step(batch, stage)
        x, y = batch
        logits = self.model(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        self.tally[stage].update(logits, y, loss)
        self._test_logits.append(logits.detach().double().cpu())
        self._test_labels.append(y.detach().cpu())
        return loss

    def on_test_epoch_start(self) -> None:
        self._test_logits, self._test_labels = [], []

    @torch.no_grad()
    def _logits_of(self, x: torch.Tensor) -> torch.Tensor:
        was = self.model.training
        self.model.eval()
        try:
            return torch.cat([self.model(x[i:i + self.eval_batch_size].to(self.device)).double().cpu()
                              for i in range(0, len(x), self.eval_batch_size)])
        finally:
            self.model.train(was)

    def _gathered(self) -> tuple[torch.Tensor, torch.Tensor]:
        logits, labels = torch.cat(self._test_logits), torch.cat(self._test_labels)
        if self.trainer.world_size > 1:   # every process holds a shard of the test set: EM needs all of it
            import torch.distributed as dist

            parts: list = [None] * self.trainer.world_size
            dist.all_gather_object(parts, (logits, labels))
            logits, labels = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        return logits, labels

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        if not self._test_logits:
            return
        logits, y = self._gathered()
        temperature = 1.0
        if self.calibration == "temperature" and self.val_set is not None:
            vx, vy = self.val_set()
            if len(vy):
                temperature = fit_temperature(self._logits_of(vx), vy)
        probs = (logits / temperature).softmax(-1)
        source, truth = self.source_priors, self.target_priors
        estimate, steps = em_priors(probs, source, self.em_iterations)
        plain = probs.argmax(-1)
        em = adjust(probs, source, estimate).argmax(-1)
        oracle = adjust(probs, source, truth).argmax(-1)
        acc = {name: float((pred == y).double().mean()) for name, pred in
               (("plain", plain), ("em", em), ("oracle", oracle))}
        l1_source, l1_em = float((source - truth).abs().sum()), float((estimate - truth).abs().sum())
        for key, value in (("acc_em", acc["em"]), ("acc_oracle", acc["oracle"]),
                           ("em_gain", acc["em"] - acc["plain"]), ("prior_l1_source", l1_source),
                           ("prior_l1_em", l1_em), ("prior_error_ratio", l1_em / max(l1_source, 1e-12)),
                           ("temperature", temperature)):
            self.log(f"test/{key}", value)
        per_class = {name: [float((pred[y == k] == k).double().mean()) if (y == k).any() else None
                            for k in range(len(source))] for name, pred in (("plain", plain), ("em", em))}
        self.results["label_shift"] = {
            "source_priors": [round(float(p), 5) for p in source],
            "target_priors": [round(float(p), 5) for p in truth],
            "em_priors": [round(float(p), 5) for p in estimate],
            "em_iterations": steps, "temperature": temperature, "test_images": int(len(y)),
            "per_class_acc": per_class}
        if self.run_dir is not None and self.trainer.global_rank == 0:
            self.results["label_shift"]["plot"] = self._plot(source, truth, estimate)

    def _plot(self, source, truth, estimate) -> str:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        classes = torch.arange(len(source)).numpy()
        fig, ax = plt.subplots(figsize=(7, 3.5))
        for i, (label, p) in enumerate((("training (source)", source), ("test, true", truth),
                                        ("test, EM estimate", estimate))):
            ax.bar(classes + (i - 1) * 0.27, p.numpy(), width=0.27, label=label)
        ax.set_xticks(classes)
        ax.set_xlabel("class (digit)")
        ax.set_ylabel("share of the images")
        ax.set_ylim(0, None)
        ax.set_title("Label shift: class priors, and EM's estimate from unlabelled test images", fontsize=9)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = self.plots_dir() / "priors.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return str(path)
