"""Chapter 1.1 critical points: the toy network's saddle at the origin and its valley of minima (eq. 1.9)."""
from __future__ import annotations

import math

import pytest


def test_configs_compose(compose_cfg):
    cfg = compose_cfg(["task=critical_points"])
    assert cfg.model.name == "toy_network" and cfg.task.fit is False
    assert compose_cfg(["experiment=saddle_point"]).hydra.sweeper.params


def test_saddle_at_origin(run_leedl):
    r = run_leedl(["task=critical_points", "threads=1", "seed=0", "logger=none"])
    assert r["status"] == "ok", r.get("error")
    assert r["kind"] == "saddle"
    assert r["eigenvalues"] == pytest.approx([-2.0, 2.0], abs=1e-9)
    assert sum(r["hessian"], []) == pytest.approx([0.0, -2.0, -2.0, 0.0], abs=1e-9)
    assert r["gradient"] == pytest.approx([0.0, 0.0], abs=1e-12)
    u = r["escape_direction"]
    assert [abs(v) for v in u] == pytest.approx([1 / math.sqrt(2)] * 2) and u[0] * u[1] > 0
    assert r["loss_before"] == pytest.approx(1.0) and r["loss_after"] < 1.0
    for key in ("gradient", "hessian", "eigenvalues", "kind", "escape_direction", "loss_before", "loss_after"):
        assert key in r


@pytest.mark.parametrize("point,kind", [("[1.0,1.0]", "degenerate"), ("[2.0,0.5]", "degenerate"),
                                        ("[0.5,0.5]", "not_critical")])
def test_other_points(run_leedl, point, kind):
    r = run_leedl(["task=critical_points", f"task.module.point={point}", "threads=1", "seed=0", "logger=none"])
    assert r["kind"] == kind
    if kind == "degenerate":   # a minimum of loss 0 with one flat direction along w1*w2 = 1
        assert r["loss_before"] == pytest.approx(0.0, abs=1e-12) and r["eigenvalues"][0] == pytest.approx(0.0, abs=1e-9)
        assert r["escape_direction"] is None and r["loss_after"] is None


def test_verdicts():
    import torch

    from leedl_cli.tasks.critical_points import verdict

    assert verdict(torch.tensor([1.0, 2.0]), 0.0, 1e-6, 1e-6) == "local_minimum"
    assert verdict(torch.tensor([-1.0, -2.0]), 0.0, 1e-6, 1e-6) == "local_maximum"
    assert verdict(torch.tensor([-1.0, 2.0]), 0.0, 1e-6, 1e-6) == "saddle"
    assert verdict(torch.tensor([0.0, 2.0]), 0.0, 1e-6, 1e-6) == "degenerate"
    assert verdict(torch.tensor([1.0, 2.0]), 0.1, 1e-6, 1e-6) == "not_critical"
