"""Label shift (ch. 6, section 6.1): MNIST whose class proportions differ between training and test.

The book's first kind of domain shift: the inputs of each class look the same, but how often each class occurs
changes between training and test. `LabelShiftMNISTDataModule` keeps the MNIST images and changes only how many of
each class there are, by a fixed draw (SPLIT_SEED, never the run's seed):

- training and validation (the source): class k keeps the fraction `train_imbalance ** (k / 9)` of its images
  (class 0 all of them, class 9 `train_imbalance` of them; 1.0: no imbalance);
- test (the target): `test_priors` = `balanced` (every class as many images as the rarest test class has),
  `reversed` (the training proportions turned around: class 9 the most frequent, class 0 the rarest) or `train`
  (the training proportions: no shift, the control).

The spec hands the task the class priors of the training set (`source_priors`) and of the test set (`target_priors`) (the true target priors, which a
correction method must not use: the task only scores its estimate against them) and the validation images (for
calibrating the classifier's probabilities on the source).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Callable, Literal

import torch

from leedl_cli.contract import Range, offered
from leedl_cli.data.images import SPLIT_SEED, ImageSpec, MNISTDataModule

TestPriors = Literal["balanced", "reversed", "train"]
Imbalance = Range(0, 1, low_open=True)


def imbalance_fractions(ratio: float, n_classes: int = 10, reverse: bool = False) -> list[float]:
    """The fraction of its images class k keeps: ratio ** (k / (n - 1)) (reversed: ratio ** ((n - 1 - k) / (n - 1)))."""
    steps = max(1, n_classes - 1)
    return [float(ratio) ** ((n_classes - 1 - k if reverse else k) / steps) for k in range(n_classes)]


def keep_per_class(y: torch.Tensor, counts: list[int], seed: int = SPLIT_SEED) -> torch.Tensor:
    """Sorted indices of `counts[k]` images of each class k, drawn without replacement by `seed`."""
    g = torch.Generator().manual_seed(seed)
    kept = []
    for k, n in enumerate(counts):
        idx = (y == k).nonzero().flatten()
        kept.append(idx[torch.randperm(len(idx), generator=g)[:n]])
    return torch.cat(kept).sort().values


def priors_of(y: torch.Tensor, n_classes: int) -> tuple[float, ...]:
    counts = torch.bincount(y, minlength=n_classes).double()
    return tuple(float(p) for p in counts / counts.sum())


@dataclass(frozen=True)
class LabelShiftSpec(ImageSpec):
    """An ImageSpec with the class priors of training and test, and the validation set (source distribution)."""

    source_priors: tuple[float, ...]              # the class proportions of the training set
    target_priors: tuple[float, ...]              # ... of the test set (for scoring an estimate only)
    val_set: Callable[[], tuple] = offered()      # (images, labels) of the validation set


class LabelShiftMNISTDataModule(MNISTDataModule):
    """MNIST with class-imbalanced training and validation sets and a test set of other class proportions."""

    def __init__(self, train_imbalance: Annotated[float, Imbalance] = 0.05, test_priors: TestPriors = "balanced",
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.train_imbalance, self.test_priors = float(train_imbalance), test_priors

    def load(self) -> None:
        super().load()
        n = self.num_classes
        source = imbalance_fractions(self.train_imbalance, n)
        for name in ("train", "val"):
            x, y = getattr(self, name)
            have = torch.bincount(y, minlength=n).tolist()
            keep = keep_per_class(y, [round(have[k] * source[k]) for k in range(n)])
            setattr(self, name, (x[keep], y[keep]))
        x, y = self.test
        rarest = int(torch.bincount(y, minlength=n).min())
        target = {"balanced": [1.0] * n, "train": source,
                  "reversed": imbalance_fractions(self.train_imbalance, n, reverse=True)}[self.test_priors]
        keep = keep_per_class(y, [max(1, round(rarest * f)) for f in target])
        self.test = (x[keep], y[keep])

    def provides(self) -> LabelShiftSpec:
        base = super().provides()
        return LabelShiftSpec(**{f: getattr(base, f) for f in base.__dataclass_fields__},
                              source_priors=priors_of(self.train[1], self.num_classes),
                              target_priors=priors_of(self.test[1], self.num_classes), val_set=self.val_set)

    def val_set(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.val
