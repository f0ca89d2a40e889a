"""The advantage A_t of every version of the policy gradient (LeeDL ch. 7.3-7.5), as plain tensor functions.

Tensors are time-major: [T, N] = [time steps, parallel environments]. `done[t]` says the episode ended
after step t (terminated or truncated), `terminated[t]` that it ended for real (no future reward), so a
critic may bootstrap V(s_t+1) after a truncation but never after a termination.
"""
from __future__ import annotations

from typing import Literal

import torch

Critic = Literal["mc", "td"]
"""How a critic V(s_t) learns: towards the Monte Carlo return G_t (mc) or towards r_t + gamma V(s_t+1) (td)."""


def reward_to_go(r: torch.Tensor, done: torch.Tensor, gamma: float = 1.0,
                 last: torch.Tensor | None = None) -> torch.Tensor:
    """G'_t = r_t + gamma r_t+1 + gamma^2 r_t+2 + ... up to the end of the episode (G_t when gamma = 1).

    `last` [N] is the value of what follows the last step when its episode is not over (0 by default)."""
    T = r.shape[0]
    G = torch.zeros_like(r)
    future = torch.zeros_like(r[0]) if last is None else last
    for t in reversed(range(T)):
        future = r[t] + gamma * future * (1.0 - done[t].float())
        G[t] = future
    return G


def advantage_v0(r: torch.Tensor) -> torch.Tensor:
    """Version 0: A_t = r_t (only the reward right after the action)."""
    return r.clone()


def advantage_v1(r: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
    """Version 1: A_t = G_t = r_t + r_t+1 + ... + r_T (every later reward counts for the action)."""
    return reward_to_go(r, done, gamma=1.0)


def advantage_v2(r: torch.Tensor, done: torch.Tensor, gamma: float) -> torch.Tensor:
    """Version 2: A_t = G'_t = sum_n gamma^(n-t) r_n (far rewards count less)."""
    return reward_to_go(r, done, gamma)


def advantage_v3(r: torch.Tensor, done: torch.Tensor, gamma: float, b: float) -> torch.Tensor:
    """Version 3: A_t = G'_t - b (a baseline b so that A has both signs)."""
    return reward_to_go(r, done, gamma) - b


def advantage_v3_5(G: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Version 3.5: A_t = G'_t - V(s_t) (the critic's expectation is the baseline)."""
    return G - v


def td_error(r: torch.Tensor, v: torch.Tensor, v_next: torch.Tensor, terminated: torch.Tensor,
             gamma: float) -> torch.Tensor:
    """Version 4 (advantage actor-critic): A_t = r_t + gamma V(s_t+1) - V(s_t); V(s_t+1) = 0 after termination."""
    return r + gamma * v_next * (1.0 - terminated.float()) - v


def gae(delta: torch.Tensor, done: torch.Tensor, gamma: float, lam: float) -> torch.Tensor:
    """Generalised advantage: A_t = sum_k (gamma lam)^k delta_t+k within the episode (lam = 0: version 4 exactly)."""
    if lam == 0.0:
        return delta
    return reward_to_go(delta, done, gamma * lam)
