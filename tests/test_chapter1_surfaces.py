"""Chapter 1 error surfaces: closed-form gradients, configs, smoke runs and the book's claims (ch. 1.2-1.5)."""
from __future__ import annotations

import math

import pytest
import torch

from leedl_cli.models.surfaces import ElongatedQuadratic, LocalMinimum, Rosenbrock, ToyNetwork

SURFACES = ["elongated_quadratic", "toy_network", "local_minimum", "rosenbrock"]


@pytest.mark.parametrize("surface", [ElongatedQuadratic((-3.0, 2.0)), ToyNetwork((0.3, -1.2)),
                                     LocalMinimum((1.7, 0.4)), Rosenbrock((-1.1, 0.7))])
def test_closed_form_gradient_matches_autograd(surface):
    surface().backward()
    w, b = surface.theta.detach().tolist()
    assert surface.gradient(w, b) == pytest.approx(surface.theta.grad.tolist(), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("model", SURFACES)
def test_configs_compose(compose_cfg, model):
    cfg = compose_cfg(["task=error_surface", f"model={model}"])
    assert cfg.model.name in cfg.task.models


@pytest.mark.parametrize("experiment", ["lr_too_big_too_small", "lr_schedule", "adagrad_vs_rmsprop", "momentum"])
def test_surface_presets_compose(compose_cfg, experiment):
    cfg = compose_cfg([f"experiment={experiment}"])
    assert cfg.task.name == "error_surface" and cfg.report.get("plots")


def test_smoke_writes_trajectory(run_leedl, tmp_path):
    r = run_leedl(["task=error_surface", "debug=smoke", "threads=1"])
    assert r["status"] == "ok", r.get("error")
    assert r["updates_done"] == 300
    assert (tmp_path / "run" / "trajectory.csv").is_file() and (tmp_path / "run" / "surface_grid.json").is_file()


def test_lr_too_big_oscillates(run_leedl):
    """Fig 1.23(a): lr 1e-2 keeps jumping between the valley walls; the loss stays ~154 (the minimum is 0)."""
    r = run_leedl(["task=error_surface", "optimizer=sgd", "optimizer.lr=1e-2", "task.module.updates=5000",
                   "logger=none", "threads=1", "seed=0"])
    assert r["status"] == "ok", r.get("error")
    assert r["sign_changes_last_10pct"] >= 499          # a sign change at (almost) every update
    assert r["final_loss"] > 100 and r["loss_range_last_10pct"] < 1.0  # stuck oscillating, not converging


def test_lr_too_small_stalls():
    """Fig 1.23(b): T plain gradient-descent updates of lr 1e-7 (the task's closed-form update loop) move each
    coordinate by at most T * lr * max|gradient|: |dL/dw| <= a |w - w*| + tilt c s and |dL/db| <= c s on this
    surface. The measured moves are inside those bounds and the flat coordinate covers a sliver of its way."""
    from leedl_cli.tasks.error_surface import ErrorSurface

    T, lr = 10_000, 1e-7
    surface = ElongatedQuadratic()                       # start (-10, 3), minimum (0, 0)
    task = ErrorSurface(surface, updates=T)
    task.on_train_start()
    task._updates_closed_form(torch.optim.SGD([surface.theta], lr=lr), None, T)
    traj = task.trajectory[: task.done + 1]
    out = task.summary(traj, surface.loss(traj[:, 0], traj[:, 1]))
    assert out["updates_done"] == T
    moved_w, moved_b = out["final_w"] + 10.0, 3.0 - out["final_b"]
    assert 0 < moved_w <= T * lr * (surface.a * 10.0 + surface.tilt * surface.c * surface.s)
    assert 0 < moved_b <= T * lr * surface.c * surface.s
    assert out["flat_fraction_covered"] == pytest.approx(moved_w / 10.0) and out["flat_fraction_covered"] < 0.01


@pytest.mark.slow
def test_adagrad_reaches_minimum_then_decay_without_bursts(run_leedl):
    """Figs 1.28/1.30: book AdaGrad (lr 0.3) gets within 1e-3 and then bursts; with eta/sqrt(1+t) decay no burst."""
    plain = run_leedl(["task=error_surface", "optimizer=adagrad_mean", "optimizer.lr=0.3", "task.module.updates=20000",
                       "logger=none", "threads=1", "seed=0"], name="plain")
    assert plain["min_distance_to_minimum"] < 1e-3
    assert plain["bursts"] >= 1
    decay = run_leedl(["task=error_surface", "optimizer=adagrad_mean", "optimizer.lr=0.3", "task.module.updates=20000",
                       "scheduler=inverse_time_decay", "logger=none", "threads=1", "seed=0"], name="decay")
    assert decay["min_distance_to_minimum"] < 1e-3
    assert decay["bursts"] == 0


def test_momentum_rolls_past_local_minimum(run_leedl):
    gd = run_leedl(["experiment=momentum", "hydra.mode=RUN", "optimizer=sgd", "logger=none", "threads=1", "seed=0"],
                   name="gd")
    mom = run_leedl(["experiment=momentum", "hydra.mode=RUN", "optimizer=momentum", "logger=none", "threads=1",
                     "seed=0"], name="mom")
    assert gd["reached_global_minimum"] == 0.0 and mom["reached_global_minimum"] == 1.0


@pytest.mark.slow
def test_lr_too_big_too_small_full(run_leedl):
    """The issue's numbers with the full 100,000 updates."""
    big = run_leedl(["experiment=lr_too_big_too_small", "hydra.mode=RUN", "optimizer.lr=1e-2", "logger=none",
                     "threads=1"], name="big")
    small = run_leedl(["experiment=lr_too_big_too_small", "hydra.mode=RUN", "optimizer.lr=1e-7", "logger=none",
                       "threads=1"], name="small")
    assert big["sign_changes_last_10pct"] >= 9999 and big["final_loss"] > 100
    assert small["flat_fraction_covered"] < 0.1


def test_book_adagrad_with_inverse_time_decay_is_torch_adagrad():
    """adagrad_mean + eta/sqrt(1+t) == torch.optim.Adagrad (sum of g^2), as the optimizer headers say."""
    from torch.optim.lr_scheduler import LambdaLR

    from leedl_cli.optim.adagrad_mean import AdaGradMean

    a, b = ElongatedQuadratic(), ElongatedQuadratic()
    oa = AdaGradMean([a.theta], lr=0.3, eps=0.0)
    sa = LambdaLR(oa, lambda t: 1 / math.sqrt(1 + t))
    ob = torch.optim.Adagrad([b.theta], lr=0.3, eps=0.0)
    for _ in range(50):
        for s, o in ((a, oa), (b, ob)):
            o.zero_grad()
            s().backward()
            o.step()
        sa.step()
    assert a.theta.tolist() == pytest.approx(b.theta.tolist(), rel=1e-9)
