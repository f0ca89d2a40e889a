"""Learning-rate schedules of chapter 1.5 and the Transformer (section 4), as LambdaLR factories.

Every factory has the signature `factory(optimizer, total_steps, **params) -> LRScheduler`, where
`total_steps` is the number of scheduler steps of the whole run (updates when the scheduler config
says `interval: step`, epochs when `interval: epoch`). Counts given as a float in (0, 1) are read as a
fraction of `total_steps` (`warmup: 0.1` = the first 10% of the updates).
"""
from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def _count(value: float | int, total_steps: int) -> int:
    value = float(value)
    return int(round(value * total_steps)) if 0 < value < 1 else int(value)


def constant(optimizer: Optimizer, total_steps: int) -> LambdaLR:
    """eta_t = eta: no schedule."""
    return LambdaLR(optimizer, lambda step: 1.0)


def step_decay(optimizer: Optimizer, total_steps: int, step_size: float = 0.3, gamma: float = 0.1) -> LambdaLR:
    """eta_t = eta * gamma^floor(t / step_size)."""
    size = max(1, _count(step_size, total_steps))
    return LambdaLR(optimizer, lambda step: gamma ** (step // size))


def exponential_decay(optimizer: Optimizer, total_steps: int, final_ratio: float = 0.01) -> LambdaLR:
    """eta_t = eta * final_ratio^(t / T): decays smoothly to final_ratio * eta at the end (Fig 1.30)."""
    total = max(1, total_steps)
    return LambdaLR(optimizer, lambda step: final_ratio ** (min(step, total) / total))


def inverse_time_decay(optimizer: Optimizer, total_steps: int, decay: float = 1.0) -> LambdaLR:
    """eta_t = eta / sqrt(1 + decay * t): the book's eta^t = eta / sqrt(t + 1) when decay=1."""
    return LambdaLR(optimizer, lambda step: 1.0 / math.sqrt(1.0 + decay * step))


def warmup_linear(optimizer: Optimizer, total_steps: int, warmup: float = 0.1) -> LambdaLR:
    """Linear warmup from 0 to eta over `warmup` steps, then linear decay to 0 at the end (BERT)."""
    w = max(1, _count(warmup, total_steps))
    total = max(w + 1, total_steps)

    def factor(step: int) -> float:
        if step < w:
            return (step + 1) / w
        return max(0.0, (total - step) / (total - w))

    return LambdaLR(optimizer, factor)


def warmup_cosine(optimizer: Optimizer, total_steps: int, warmup: float = 0.1, min_ratio: float = 0.0) -> LambdaLR:
    """Linear warmup, then cosine decay from eta to min_ratio * eta."""
    w = max(1, _count(warmup, total_steps))
    total = max(w + 1, total_steps)

    def factor(step: int) -> float:
        if step < w:
            return (step + 1) / w
        progress = min(1.0, (step - w) / (total - w))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)


def inverse_sqrt(optimizer: Optimizer, total_steps: int, warmup: float = 4000) -> LambdaLR:
    """The Transformer's schedule (Vaswani et al. 2017): lr grows linearly for `warmup` steps, then ~ 1/sqrt(step).

    Normalised so the peak (at step = warmup) is the optimizer's lr: factor = min(s / w, sqrt(w / s)).
    """
    w = max(1, _count(warmup, total_steps))

    def factor(step: int) -> float:
        s = step + 1
        return min(s / w, math.sqrt(w / s))

    return LambdaLR(optimizer, factor)


def dann_annealing(optimizer: Optimizer, total_steps: int, alpha: float = 10.0, beta: float = 0.75) -> LambdaLR:
    """The DANN paper's annealing (Ganin & Lempitsky 2015): mu_p = mu_0 / (1 + alpha p)^beta, p = t / T in [0, 1]."""
    total = max(1, total_steps)
    return LambdaLR(optimizer, lambda step: (1.0 + alpha * min(step, total) / total) ** -beta)
