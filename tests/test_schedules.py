import math

import pytest
import torch

from leedl_cli.optim import schedules


def lrs(factory, total=100, **kw):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = factory(opt, total, **kw)
    out = []
    for _ in range(total):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_warmup_linear_rises_then_falls_to_zero():
    lr = lrs(schedules.warmup_linear, 100, warmup=0.1)
    assert lr[0] == pytest.approx(0.1) and lr[9] == pytest.approx(1.0)
    assert lr[-1] < 0.02 and all(a >= b for a, b in zip(lr[10:], lr[11:]))


def test_inverse_sqrt_peaks_at_warmup():
    lr = lrs(schedules.inverse_sqrt, 400, warmup=100)
    assert max(lr) == pytest.approx(1.0) and lr.index(max(lr)) == 99
    assert lr[399] == pytest.approx(math.sqrt(100 / 400))


def test_exponential_decay_reaches_final_ratio():
    lr = lrs(schedules.exponential_decay, 101, final_ratio=0.01)
    assert lr[0] == 1.0 and lr[100] == pytest.approx(0.01 ** (100 / 101))


def test_step_decay_and_inverse_time():
    lr = lrs(schedules.step_decay, 100, step_size=30, gamma=0.5)
    assert lr[29] == 1.0 and lr[30] == 0.5 and lr[90] == 0.125
    lr = lrs(schedules.inverse_time_decay, 10)
    assert lr[3] == pytest.approx(0.5)
