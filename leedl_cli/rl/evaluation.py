"""The measure of a policy: its episodic returns over fixed-seed episodes (the same episodes for every run)."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from leedl_cli.rl.rollout import observations


@torch.no_grad()
def evaluation_returns(make_envs: Callable[[int], Any], actor: Callable[[torch.Tensor], torch.Tensor],
                       n_episodes: int, seed: int, batch: int = 50, greedy: bool = True,
                       max_episode_steps: int = 100_000) -> list[float]:
    """The return of each of `n_episodes` episodes (seeds seed, seed+1, ...), `batch` environments at a time.

    `actor(s)` gives the logits of pi(.|s); `greedy` takes argmax_a pi(a|s), otherwise actions are sampled from a
    generator seeded with `seed` (the run's random stream is not touched)."""
    B = min(n_episodes, batch)
    envs = make_envs(B)
    g = torch.Generator().manual_seed(seed)
    out: list[float] = []
    try:
        for start in range(0, n_episodes, B):
            s = observations(envs.reset(seed=[seed + start + i for i in range(B)])[0])
            ret, alive = np.zeros(B), np.ones(B, dtype=bool)
            steps = 0
            while alive.any() and steps < max_episode_steps:
                logits = actor(s)
                a = logits.argmax(-1) if greedy else torch.multinomial(logits.softmax(-1), 1, generator=g)[:, 0]
                s2, r, term, trunc, _ = envs.step(a.numpy())
                ret += r * alive
                alive &= ~(term | trunc)
                s = observations(s2)
                steps += 1
            out += ret[: min(B, n_episodes - start)].tolist()
    finally:
        envs.close()
    return out
