"""Chapter 7 tasks end to end: configs compose, every task and version runs in smoke mode, MC vs TD gives the
book's values, a small deterministic CartPole run learns (pinned)."""
from __future__ import annotations

import pytest

RL_TASKS = ["cartpole", "lunar_lander", "gym", "mc_vs_td"]


@pytest.mark.parametrize("task,model", [("cartpole", "policy"), ("cartpole", "policy_shared"),
                                        ("lunar_lander", "policy"), ("gym", "policy_shared"),
                                        ("mc_vs_td", "value_table")])
def test_compose(compose_cfg, task, model):
    cfg = compose_cfg([f"task={task}", f"model={model}"])
    assert cfg.model.name == model and cfg.task.name == task


def test_generic_gym_task_takes_any_env_id(compose_cfg):
    cfg = compose_cfg(["task=gym", "task.env_id=MountainCar-v0"])
    assert cfg.task.data.env_id == "MountainCar-v0"


def test_policy_model_refuses_wrong_task(run_leedl):
    r = run_leedl(["task=cartpole", "model=mlp", "debug=smoke"])
    assert r["status"] == "failed" and "policy" in r["error"]


@pytest.mark.parametrize("task", RL_TASKS)
def test_smoke(run_leedl, task):
    r = run_leedl([f"task={task}", "debug=smoke", "threads=1"])
    assert r["status"] == "ok", r.get("error")
    if task != "mc_vs_td":
        assert {"test/return_mean", "test/return_std", "train/env_steps"} <= set(r["metrics"])


@pytest.mark.parametrize("version", ["v0", "v1", "v2", "v3", "v3_5", "v4", "ppo"])
def test_every_version_runs(run_leedl, version):
    r = run_leedl(["task=cartpole", "debug=smoke", "threads=1", f"task.module.version={version}",
                   "task.module.critic=mc"])
    assert r["status"] == "ok", r.get("error")
    assert r["version"] == version and r["env_steps"] > 0


def test_unknown_version_is_a_clear_error(run_leedl):
    r = run_leedl(["task=cartpole", "debug=smoke", "task.module.version=v9"])
    assert r["status"] == "failed" and "v4" in r["error"]


def test_non_discrete_env_is_refused(run_leedl):
    r = run_leedl(["task=gym", "task.env_id=Pendulum-v1", "debug=smoke"])
    assert r["status"] == "failed" and "discrete" in r["error"]


def test_mc_vs_td_gives_the_books_values(run_leedl):
    r = run_leedl(["experiment=mc_vs_td", "logger=none"])
    assert r["status"] == "ok", r.get("error")
    m = r["metrics"]
    assert m["test/V_s_b_mc"] == pytest.approx(0.75, abs=1e-3)
    assert m["test/V_s_a_mc"] == pytest.approx(0.0, abs=1e-3)
    assert m["test/V_s_b_td"] == pytest.approx(0.75, abs=1e-3)
    assert m["test/V_s_a_td"] == pytest.approx(0.75, abs=1e-3)
    assert r["mc_vs_td"]["values"]["td"]["s_a"] == pytest.approx(0.75, abs=1e-3)


def test_small_cartpole_run_learns_deterministically(run_leedl):
    """40 updates of v4 (8 envs x 32 steps): well above a random policy's ~20, and the same number every time."""
    args = ["task=cartpole", "seed=0", "threads=1", "logger=none", "callbacks=none", "task.data.updates=40",
            "task.module.gae_lambda=0.95", "optimizer.lr=2.5e-3", "task.module.eval_episodes=10",
            "trainer.enable_progress_bar=false"]
    a = run_leedl(args, name="a")
    assert a["status"] == "ok", a.get("error")
    assert a["metrics"]["test/return_mean"] > 200   # a random policy gets ~20
    b = run_leedl(args, name="b")
    assert b["metrics"]["test/return_mean"] == a["metrics"]["test/return_mean"]
    assert a["metrics"]["test/return_mean"] == pytest.approx(PINNED_RETURN, rel=1e-6)


PINNED_RETURN = 443.0   # greedy return over 10 eval episodes after 40 updates (10,240 env steps), seed 0
