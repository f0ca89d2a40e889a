"""Step 1 of algorithm 7.1: collect data {(s_t, a_t, r_t)} with the current policy pi_theta (actions sampled).

A `RolloutCollector` runs a vector of gymnasium environments (same-step autoreset) and returns one `Rollout` per
call, time-major tensors [T, N] = [time steps, parallel environments], in one of two ways:

- `n_steps` from every environment, episodes running on across rollouts (actor-critic, PPO: the critic
  bootstraps with V(s_t+1) where a rollout cuts an episode);
- one whole episode per environment, all reset together (REINFORCE versions 0-3.5: a Monte Carlo return needs
  the episode's end); steps after an environment's episode ended are masked out (`valid`, and `done` so that
  nothing after the end flows back into a return).

It also keeps the books of the training episodes: env steps taken, the return of every finished episode.
`Rollouts` is the train loader: `updates` rollouts, each collected when the trainer asks for it, so with the
policy as the previous update left it.
"""
from __future__ import annotations

from collections import deque
from typing import Any, Callable, Iterator, NamedTuple

import numpy as np
import torch

Policy = Callable[[torch.Tensor], torch.Tensor]
"""s_t [N, obs_dim] -> a_t [N], sampled from pi(.|s_t)."""


class Rollout(NamedTuple):
    s: torch.Tensor            # [T, N, obs_dim] s_t
    a: torch.Tensor            # [T, N] a_t ~ pi(.|s_t)
    r: torch.Tensor            # [T, N] r_t
    terminated: torch.Tensor   # [T, N] the episode ended after step t for real: no reward follows, V(s_t+1) = 0
    done: torch.Tensor         # [T, N] the episode ended after step t (terminated or truncated)
    s_next: torch.Tensor       # [T, N, obs_dim] s_t+1 (a finished episode's real last state)
    valid: torch.Tensor        # [T, N] step t belongs to the collected data (whole episodes: before the end)


def observations(x) -> torch.Tensor:
    """A batch of observations as float32 [N, obs_dim]."""
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).flatten(1)


def frames(x) -> torch.Tensor:
    """A batch of screen observations as they come, uint8 [N, ...] (4x smaller than float32; the model scales)."""
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.uint8))


class RolloutCollector:
    """Runs `envs` with `act`; `n_steps=None` collects whole episodes (at most `max_episode_steps` steps)."""

    RECENT = 20   # episodes in the `recent` window (the monitor's train/return_recent)
    observe = staticmethod(observations)   # how observations are kept (PixelRolloutCollector: uint8 frames)

    def __init__(self, envs: Any, act: Policy, n_steps: int | None, max_episode_steps: int, seed: int) -> None:
        self.envs, self.act = envs, act
        self.n_envs = envs.num_envs
        self.n_steps, self.max_episode_steps = n_steps, max_episode_steps
        self.env_steps = 0
        self.recent: deque[float] = deque(maxlen=self.RECENT)   # returns of the last finished training episodes
        self.finished: list[float] = []                          # returns of the episodes finished since taken
        self.episodes: list[tuple[int, float]] = []              # (env steps when it ended, return) of every one
        self.s = self.observe(envs.reset(seed=seed)[0])
        self.ep_return = np.zeros(self.n_envs)

    def collect(self) -> Rollout:
        return self.whole_episodes() if self.n_steps is None else self.steps(self.n_steps)

    def take_finished(self) -> list[float]:
        """The returns of the episodes finished since the last call."""
        out, self.finished = self.finished, []
        return out

    def close(self) -> None:
        self.envs.close()

    def _step(self, a: torch.Tensor):
        """One step of every environment: (s', r, terminated, done, s'_for_V) -- s'_for_V is the real last state
        of a finished episode (the vector env already returns the next episode's first state in s')."""
        s2, r, term, trunc, info = self.envs.step(a.numpy())
        self.env_steps += self.n_envs
        s2 = self.observe(s2)
        s_next = s2
        if "_final_obs" in info and info["_final_obs"].any():
            s_next = s2.clone()
            for i in np.flatnonzero(info["_final_obs"]):
                s_next[i] = self.observe(np.asarray(info["final_obs"][i])[None])[0]
        return (s2, torch.from_numpy(np.asarray(r, dtype=np.float32)), torch.from_numpy(term),
                torch.from_numpy(term | trunc), s_next)

    def steps(self, T: int) -> Rollout:
        """T steps from every environment; an episode that ends is reset at once and goes on in the next rows."""
        columns: list[list[torch.Tensor]] = [[] for _ in range(6)]
        for _ in range(T):
            a = self.act(self.s)
            s2, r, term, done, s_next = self._step(a)
            for column, v in zip(columns, (self.s, a, r, term, done, s_next)):
                column.append(v)
            self.ep_return += r.numpy()
            for i in np.flatnonzero(done.numpy()):
                self._episode_ended(float(self.ep_return[i]))
                self.ep_return[i] = 0.0
            self.s = s2
        s, a, r, term, done, s_next = (torch.stack(c) for c in columns)
        return Rollout(s, a, r, term, done, s_next, valid=torch.ones(T, self.n_envs, dtype=torch.bool))

    def whole_episodes(self) -> Rollout:
        """One whole episode per environment (all reset together); rows after an environment's episode ended are
        masked out, so every return G_t is a real Monte Carlo return."""
        s = self.observe(self.envs.reset()[0])
        columns: list[list[torch.Tensor]] = [[] for _ in range(7)]
        alive = torch.ones(self.n_envs, dtype=torch.bool)
        while alive.any() and len(columns[0]) < self.max_episode_steps:
            a = self.act(s)
            s2, r, term, done, s_next = self._step(a)
            for column, v in zip(columns, (s, a, r, term, done, s_next, alive.clone())):
                column.append(v)
            alive &= ~done
            s = s2
        s, a, r, term, done, s_next, valid = (torch.stack(c) for c in columns)
        done = done | ~valid          # nothing after an episode's end flows back into its returns
        r = r * valid
        for ret in r.sum(0).tolist():
            self._episode_ended(ret)
        return Rollout(s, a, r, term, done, s_next, valid)

    def _episode_ended(self, ret: float) -> None:
        self.recent.append(ret)
        self.finished.append(ret)
        self.episodes.append((self.env_steps, ret))


class PixelRolloutCollector(RolloutCollector):
    """Keeps observations as uint8 frames [N, C, H, W] (an Atari rollout of 8 x 128 steps: 29 MB, not 116 MB)."""

    observe = staticmethod(frames)


class Rollouts:
    """The train loader of a policy-gradient run: `updates` rollouts from `collector()`, each collected when the
    trainer asks for the next batch (a length and no prefetching: Lightning fetches one batch per step)."""

    def __init__(self, collector: Callable[[], RolloutCollector], updates: int) -> None:
        self.collector, self.updates = collector, updates

    def __len__(self) -> int:
        return self.updates

    def __iter__(self) -> Iterator[Rollout]:
        for _ in range(self.updates):
            yield self.collector().collect()
