"""Learning-rate schedules of chapter 1.5 and the Transformer (section 4), as LambdaLR factories.

Every factory has the signature `factory(optimizer, total_steps, **params) -> LRScheduler`, where
`total_steps` is the number of scheduler steps of the whole run (updates when the scheduler config
says `interval: step`, epochs when `interval: epoch`). Counts given as a float in (0, 1) are read as a
fraction of `total_steps` (`warmup: 0.1` = the first 10% of the updates). A run without a known length
(`trainer.max_epochs=-1` and no `max_steps`, e.g. stopped by `max_time`) has `total_steps=None`: the schedules
that need the horizon (marked `needs_horizon`) refuse it, the others run.
"""
from __future__ import annotations

import math
from typing import Annotated

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from leedl_cli.contract import NonNegative, OpenProbability, Positive, Probability, Range
from leedl_cli.errors import LeedlError


def needs_horizon(fn):
    """Marks a schedule that needs the run's number of steps (`total_steps` not None)."""
    fn.needs_horizon = True
    return fn


def _horizon(total_steps: int | None, name: str) -> int:
    if total_steps is None:
        raise LeedlError(f"scheduler={name} needs the run's length: give trainer.max_epochs or trainer.max_steps "
                         f"(a run with trainer.max_epochs=-1 has none), or use scheduler=constant")
    return total_steps


def _count(value: float | int, total_steps: int | None, name: str = "") -> int:
    value = float(value)
    return int(round(value * _horizon(total_steps, name))) if 0 < value < 1 else int(value)


def constant(optimizer: Optimizer, total_steps: int | None) -> LambdaLR:
    """eta_t = eta: no schedule."""
    return LambdaLR(optimizer, lambda step: 1.0)


def step_decay(optimizer: Optimizer, total_steps: int | None, step_size: Annotated[float, Positive] = 0.3,
               gamma: Annotated[float, OpenProbability] = 0.1) -> LambdaLR:
    """eta_t = eta * gamma^floor(t / step_size)."""
    size = max(1, _count(step_size, total_steps, "step_decay"))
    return LambdaLR(optimizer, lambda step: gamma ** (step // size))


@needs_horizon
def exponential_decay(optimizer: Optimizer, total_steps: int | None,
                      final_ratio: Annotated[float, OpenProbability] = 0.01) -> LambdaLR:
    """eta_t = eta * final_ratio^(t / T): decays smoothly to final_ratio * eta at the end (Fig 1.30)."""
    total = max(1, _horizon(total_steps, "exponential_decay"))
    return LambdaLR(optimizer, lambda step: final_ratio ** (min(step, total) / total))


def inverse_time_decay(optimizer: Optimizer, total_steps: int | None, decay: Annotated[float, NonNegative] = 1.0) -> LambdaLR:
    """eta_t = eta / sqrt(1 + decay * t): the book's eta^t = eta / sqrt(t + 1) when decay=1."""
    return LambdaLR(optimizer, lambda step: 1.0 / math.sqrt(1.0 + decay * step))


@needs_horizon
def warmup_linear(optimizer: Optimizer, total_steps: int | None, warmup: Annotated[float, NonNegative] = 0.1) -> LambdaLR:
    """Linear warmup from 0 to eta over `warmup` steps, then linear decay to 0 at the end (BERT)."""
    w = max(1, _count(warmup, total_steps, "warmup_linear"))
    total = max(w + 1, _horizon(total_steps, "warmup_linear"))

    def factor(step: int) -> float:
        if step < w:
            return (step + 1) / w
        return max(0.0, (total - step) / (total - w))

    return LambdaLR(optimizer, factor)


@needs_horizon
def warmup_cosine(optimizer: Optimizer, total_steps: int | None, warmup: Annotated[float, NonNegative] = 0.1,
                  min_ratio: Annotated[float, Probability] = 0.0) -> LambdaLR:
    """Linear warmup, then cosine decay from eta to min_ratio * eta."""
    w = max(1, _count(warmup, total_steps, "warmup_cosine"))
    total = max(w + 1, _horizon(total_steps, "warmup_cosine"))

    def factor(step: int) -> float:
        if step < w:
            return (step + 1) / w
        progress = min(1.0, (step - w) / (total - w))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)


def inverse_sqrt(optimizer: Optimizer, total_steps: int | None, warmup: Annotated[float, Range(0, low_open=True)] = 4000) -> LambdaLR:
    """The Transformer's schedule (Vaswani et al. 2017): lr grows linearly for `warmup` steps, then ~ 1/sqrt(step).

    Normalised so the peak (at step = warmup) is the optimizer's lr: factor = min(s / w, sqrt(w / s)).
    """
    w = max(1, _count(warmup, total_steps, "inverse_sqrt"))

    def factor(step: int) -> float:
        s = step + 1
        return min(s / w, math.sqrt(w / s))

    return LambdaLR(optimizer, factor)


@needs_horizon
def dann_annealing(optimizer: Optimizer, total_steps: int | None, alpha: Annotated[float, NonNegative] = 10.0,
                   beta: Annotated[float, NonNegative] = 0.75) -> LambdaLR:
    """The DANN paper's annealing (Ganin & Lempitsky 2015): mu_p = mu_0 / (1 + alpha p)^beta, p = t / T in [0, 1]."""
    total = max(1, _horizon(total_steps, "dann_annealing"))
    return LambdaLR(optimizer, lambda step: (1.0 + alpha * min(step, total) / total) ** -beta)
