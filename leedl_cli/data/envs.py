"""Gymnasium environments as a data module: the policy makes its own data (algorithm 7.1, step 1).

`provides()` gives an `EnvSpec`: the sizes the policy network needs (obs_dim, n_actions; discrete action spaces
only) and the task's interfaces to its environments: `start_rollouts` (the train loader then yields rollouts
collected with the task's policy) and `make_envs` (fresh environments for evaluation episodes).

Training uses a vector env (`SyncVectorEnv` by default: fastest for cheap environments on few cores) with
same-step autoreset, so the observation after a finished episode is already the next episode's first one and the
last one is in `info["final_obs"]`. The environments are seeded with the run's seed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Callable, Literal

import gymnasium as gym
import numpy as np
import pytorch_lightning as pl
import torch

from leedl_cli.contract import AtLeastOne
from leedl_cli.errors import LeedlError
from leedl_cli.rl.rollout import Policy, RolloutCollector, Rollouts

Vectorization = Literal["sync", "async"]


@dataclass(frozen=True)
class EnvSpec:
    """What a gymnasium environment gives a policy-gradient run."""

    obs_dim: int                  # size of the flattened observation s_t
    n_actions: int                # discrete actions: pi(.|s) is a softmax over them
    start_rollouts: Callable[[Policy, int | None, int], RolloutCollector]
    """(act, n_steps or None for whole episodes, max_episode_steps) -> the collector whose rollouts the train
    loader yields (its books: env steps, episode returns)."""
    make_envs: Callable[[int], Any]   # n -> a fresh vector of n environments (evaluation episodes)


class EnvSpaceError(LeedlError):
    """The environment does not exist or its actions are not discrete."""


def make_vector_env(env_id: str, n_envs: int, vectorization: Vectorization = "sync", env_kwargs: dict | None = None):
    try:
        return gym.make_vec(env_id, num_envs=n_envs, vectorization_mode=vectorization,
                            vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP},
                            **(env_kwargs or {}))
    except gym.error.Error as err:
        raise EnvSpaceError(f"cannot make gymnasium environment {env_id!r}: {err}. Pick a registered id "
                            f"(e.g. CartPole-v1, LunarLander-v3, Acrobot-v1) with task.env_id=...") from err


class GymEnvDataModule(pl.LightningDataModule):
    """`n_envs` copies of `env_id`; an epoch is `updates` rollouts (one policy update each)."""

    def __init__(self, env_id: str = "CartPole-v1", n_envs: Annotated[int, AtLeastOne] = 8,
                 updates: Annotated[int, AtLeastOne] = 1000, vectorization: Vectorization = "sync",
                 env_kwargs: dict | None = None) -> None:
        super().__init__()
        self.env_id, self.n_envs, self.updates = env_id, n_envs, updates
        self.vectorization, self.env_kwargs = vectorization, dict(env_kwargs or {})
        self.collector: RolloutCollector | None = None

    def provides(self) -> EnvSpec:
        obs_space, act_space = self.spaces()
        if not isinstance(act_space, gym.spaces.Discrete):
            raise EnvSpaceError(f"{self.env_id} has a {type(act_space).__name__} action space; the policy-gradient "
                                "tasks need a discrete one (pi(a|s) as a softmax over actions)")
        return EnvSpec(obs_dim=int(np.prod(obs_space.shape)), n_actions=int(act_space.n),
                       start_rollouts=self.start_rollouts, make_envs=self.make_envs)

    def spaces(self):
        if self.env_id not in gym.registry:
            raise EnvSpaceError(f"unknown gymnasium environment {self.env_id!r}; registered examples: "
                                "CartPole-v1, LunarLander-v3, Acrobot-v1, MountainCar-v0")
        env = gym.make(self.env_id, **self.env_kwargs)
        try:
            return env.observation_space, env.action_space
        finally:
            env.close()

    def make_envs(self, n_envs: int) -> Any:
        return make_vector_env(self.env_id, n_envs, self.vectorization, self.env_kwargs)

    def start_rollouts(self, act: Policy, n_steps: int | None, max_episode_steps: int) -> RolloutCollector:
        """The training environments, reset with the run's seed (`seed_everything`'s), collecting with `act`."""
        self.close()
        seed = int(torch.initial_seed() % 2**31)
        self.collector = RolloutCollector(self.make_envs(self.n_envs), act, n_steps, max_episode_steps, seed)
        return self.collector

    def _collector(self) -> RolloutCollector:
        if self.collector is None:
            raise RuntimeError("the rollouts were asked for before the task called start_rollouts(act, ...)")
        return self.collector

    def train_dataloader(self) -> Rollouts:
        return Rollouts(self._collector, self.updates)

    def test_dataloader(self):
        return range(1)                # one evaluation pass over the fixed-seed episodes

    def close(self) -> None:
        if self.collector is not None:
            self.collector.close()

    def teardown(self, stage: str) -> None:
        if stage == "fit":
            self.close()
