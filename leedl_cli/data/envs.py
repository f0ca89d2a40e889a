"""Gymnasium environments as a data module: the policy makes its own data, so this module only builds the
environments and says how many policy updates an epoch has (one item per update, algorithm 7.1).

`model_kwargs()` reports obs_dim and n_actions (discrete action spaces only). Training uses a vector env
(`SyncVectorEnv` by default: fastest for cheap environments on few cores) with same-step autoreset, so
the observation after a finished episode is already the next episode's first one and the last one is in
`info["final_obs"]`.
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytorch_lightning as pl

from leedl_cli.errors import LeedlError


def make_vector_env(env_id: str, n_envs: int, vectorization: str = "sync", env_kwargs: dict | None = None):
    try:
        return gym.make_vec(env_id, num_envs=n_envs, vectorization_mode=vectorization,
                            vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP},
                            **(env_kwargs or {}))
    except gym.error.Error as err:
        raise LeedlError(f"cannot make gymnasium environment {env_id!r}: {err}. Pick a registered id "
                         f"(e.g. CartPole-v1, LunarLander-v3, Acrobot-v1) with task.env_id=...") from err


class GymEnvDataModule(pl.LightningDataModule):
    def __init__(self, env_id: str = "CartPole-v1", n_envs: int = 8, updates: int = 1000,
                 vectorization: str = "sync", env_kwargs: dict | None = None) -> None:
        super().__init__()
        self.env_id, self.n_envs, self.updates = env_id, n_envs, updates
        self.vectorization, self.env_kwargs = vectorization, dict(env_kwargs or {})
        self._spaces = None

    def spaces(self):
        if self._spaces is None:
            env = gym.make(self.env_id, **self.env_kwargs) if self.env_id in gym.registry else None
            if env is None:
                raise LeedlError(f"unknown gymnasium environment {self.env_id!r}; registered examples: "
                                 "CartPole-v1, LunarLander-v3, Acrobot-v1, MountainCar-v0")
            self._spaces = (env.observation_space, env.action_space)
            env.close()
        return self._spaces

    def model_kwargs(self) -> dict:
        obs_space, act_space = self.spaces()
        if not isinstance(act_space, gym.spaces.Discrete):
            raise LeedlError(f"{self.env_id} has a {type(act_space).__name__} action space; the policy-gradient "
                             "tasks need a discrete one (pi(a|s) as a softmax over actions)")
        return {"obs_dim": int(np.prod(obs_space.shape)), "n_actions": int(act_space.n)}

    def make_envs(self, n_envs: int | None = None):
        return make_vector_env(self.env_id, n_envs or self.n_envs, self.vectorization, self.env_kwargs)

    def train_dataloader(self):
        return range(self.updates)     # one item per policy update: collect, compute A, update

    def test_dataloader(self):
        return range(1)                # one evaluation pass over the fixed-seed episodes
