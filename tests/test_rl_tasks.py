"""Chapter 7 tasks end to end: configs compose, every task and version runs in smoke mode, MC vs TD gives the
book's values, a small deterministic CartPole run learns (pinned)."""
from __future__ import annotations

import pytest
import torch

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


@pytest.mark.slow
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


# ---- the rollouts: a real train loader, collected with the policy of the latest update ---------------------------
def test_each_rollout_is_collected_after_the_previous_update():
    import pytorch_lightning as pl

    from leedl_cli.data.envs import GymEnvDataModule

    class CountingUpdates(pl.LightningModule):
        def __init__(self, start_rollouts) -> None:
            super().__init__()
            self.start_rollouts, self.w = start_rollouts, torch.nn.Parameter(torch.zeros(1))
            self.updates_done, self.acted_after = 0, []

        def act(self, s):
            self.acted_after.append(self.updates_done)
            return torch.zeros(len(s), dtype=torch.long)

        def on_train_start(self) -> None:
            self.start_rollouts(self.act, 3, 100)

        def training_step(self, batch, batch_idx):
            assert batch.s.shape == (3, 2, 4) and batch.r.shape == (3, 2)
            self.updates_done += 1
            return (self.w ** 2).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    data = GymEnvDataModule("CartPole-v1", n_envs=2, updates=4)
    module = CountingUpdates(data.provides().start_rollouts)
    pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False).fit(module, datamodule=data)
    assert module.acted_after == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3   # 4 rollouts of 3 steps, none fetched early
    assert data.collector.env_steps == 4 * 3 * 2


def test_whole_episode_rollouts_mask_the_steps_after_each_end():
    from leedl_cli.data.envs import GymEnvDataModule

    data = GymEnvDataModule("CartPole-v1", n_envs=3, updates=1)
    always_left = lambda s: torch.zeros(len(s), dtype=torch.long)   # noqa: E731  (the pole falls in ~10 steps)
    collector = data.provides().start_rollouts(always_left, None, 500)
    b = collector.collect()
    lengths = b.valid.sum(0)
    T = b.valid.shape[0]
    assert T == int(lengths.max()) < 30
    for i, n in enumerate(lengths.tolist()):
        assert b.valid[:n, i].all() and not b.valid[n:, i].any()
        assert b.done[n - 1:, i].all() and not b.done[:n - 1, i].any()
        assert b.r[:, i].sum().item() == n             # +1 per step the pole stayed up, nothing after the end
    assert sorted(ret for _, ret in collector.episodes) == sorted(float(n) for n in lengths.tolist())
    assert collector.env_steps == T * 3                # every environment stepped until the last one ended
    data.close()


def test_every_version_has_its_algorithm():
    from leedl_cli.tasks.pg.common import Algorithm
    from leedl_cli.tasks.policy_gradient import ALGORITHMS, VERSIONS

    assert tuple(ALGORITHMS) == VERSIONS
    assert all(issubclass(a, Algorithm) for a in ALGORITHMS.values())
    assert [v for v, a in ALGORITHMS.items() if a.whole_episodes] == ["v0", "v1", "v2", "v3", "v3_5"]


# ---- the options: one thread setting, ranges ---------------------------------------------------------------------
@pytest.mark.parametrize("task", ["cartpole", "lunar_lander", "gym"])
def test_threads_is_the_root_option(compose_cfg, task):
    cfg = compose_cfg([f"task={task}"])
    assert cfg.threads == 1 and "torch_threads" not in cfg.task.module
    assert compose_cfg([f"task={task}", "threads=2"]).threads == 2      # the command line wins


@pytest.mark.parametrize("override,key", [("+task.module.torch_threads=1", "torch_threads"),
                                          ("task.module.gamma=1.5", "gamma"),
                                          ("task.module.n_steps=0", "n_steps"),
                                          ("+task.module.ppo_clip=0", "ppo_clip"),
                                          ("task.data.n_envs=0", "n_envs"),
                                          ("task.module.critic=xx", "critic")])
def test_bad_options_are_refused_before_the_run(run_leedl, override, key):
    r = run_leedl(["task=cartpole", "debug=smoke", override])
    assert r["status"] == "failed" and key in r["error"]


def test_mc_vs_td_refuses_an_unknown_critic(run_leedl):
    r = run_leedl(["task=mc_vs_td", "debug=smoke", "task.module.critics=[mc,xx]"])
    assert r["status"] == "failed" and "critics" in r["error"] and "xx" in r["error"]


# ---- pinned: a small run of every version (12 rollouts of 4 environments) -----------------------------------
PINNED_VERSIONS = {"v0": (9.2, 1652), "v1": (174.2, 2728), "v2": (164.0, 2728), "v3": (164.0, 2728),
                   "v3_5": (140.4, 2788), "v4": (161.6, 768), "ppo": (500.0, 768)}


@pytest.mark.parametrize("version", [v if v == "v4" else pytest.param(v, marks=pytest.mark.slow)
                                     for v in PINNED_VERSIONS])
def test_small_run_of_every_version_is_pinned(run_leedl, version):
    """Greedy return over 5 evaluation episodes and env steps after 12 updates (v0-v3_5: whole episodes of 4
    environments; v4, ppo: 16 steps of 4 environments), seed 0. A few seconds each: v4's in the default tier."""
    r = run_leedl(["task=cartpole", "seed=0", "threads=1", "logger=none", "callbacks=none", "task.data.updates=12",
                   "task.data.n_envs=4", "task.module.n_steps=16", f"task.module.version={version}",
                   "task.module.critic=mc", "task.module.eval_episodes=5", "trainer.enable_progress_bar=false"])
    assert r["status"] == "ok", r.get("error")
    ret, steps = PINNED_VERSIONS[version]
    assert r["metrics"]["test/return_mean"] == pytest.approx(ret, rel=1e-6)
    assert r["env_steps"] == steps
