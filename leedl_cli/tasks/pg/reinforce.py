"""REINFORCE, versions 0 to 3.5 of LeeDL ch. 7.3-7.4: whole episodes, one update per rollout,

    L = mean_t A_t e_t,   e_t = -log pi_theta(a_t|s_t)

and the versions differ only in how good the action a_t is said to be, the advantage A_t:

    v0    A_t = r_t                              the reward right after the action
    v1    A_t = G_t  = r_t + r_t+1 + ... + r_T     every later reward of the episode
    v2    A_t = G'_t = sum_n gamma^(n-t) r_n       later rewards discounted
    v3    A_t = G'_t - b                         a baseline b (running mean of G') so that A takes both signs
    v3.5  A_t = G'_t - V(s_t)                    the critic's expectation as the baseline; V learns from G'_t
                                                 (critic=mc) or from r_t + gamma V(s_t+1) (critic=td)
"""
from __future__ import annotations

from typing import Iterator

import torch
from torch import nn

from leedl_cli.rl.rollout import Rollout
from leedl_cli.tasks import returns
from leedl_cli.tasks.pg.common import Algorithm, Losses, actor_and_critic, pg_losses


class Reinforce(Algorithm):
    """One update per rollout of whole episodes, with the advantage A_t [T, N] of `advantage`."""

    whole_episodes = True

    def advantage(self, batch: Rollout) -> torch.Tensor:
        raise NotImplementedError

    def updates(self, model: nn.Module, batch: Rollout) -> Iterator[Losses]:
        T, N = batch.a.shape
        logits = model.actor(batch.s.reshape(T * N, -1))
        yield pg_losses(logits, batch, self.advantage(batch), self.settings.normalize_advantage)


class ImmediateReward(Reinforce):
    """Version 0: A_t = r_t."""

    def advantage(self, batch: Rollout) -> torch.Tensor:
        return returns.advantage_v0(batch.r)


class CumulativeReward(Reinforce):
    """Version 1: A_t = G_t."""

    def advantage(self, batch: Rollout) -> torch.Tensor:
        return returns.advantage_v1(batch.r, batch.done)


class DiscountedReward(Reinforce):
    """Version 2: A_t = G'_t."""

    def advantage(self, batch: Rollout) -> torch.Tensor:
        return returns.advantage_v2(batch.r, batch.done, self.gamma)


class WithBaseline(Reinforce):
    """Version 3: A_t = G'_t - b, b a running mean of the G' of the collected steps."""

    b: float | None = None

    def advantage(self, batch: Rollout) -> torch.Tensor:
        G = returns.reward_to_go(batch.r, batch.done, self.gamma)
        mean_G = float(G[batch.valid].mean())
        m = self.settings.baseline_momentum
        self.b = mean_G if self.b is None else m * self.b + (1 - m) * mean_G
        return returns.advantage_v3(batch.r, batch.done, self.gamma, self.b)


class WithCritic(Reinforce):
    """Version 3.5: A_t = G'_t - V(s_t); the critic learns by Monte Carlo (V(s_t) -> G'_t) or TD
    (V(s_t) -> r_t + gamma V(s_t+1), no bootstrap after a termination)."""

    def updates(self, model: nn.Module, batch: Rollout) -> Iterator[Losses]:
        logits, V, V_next = actor_and_critic(model, batch)
        G = returns.reward_to_go(batch.r, batch.done, self.gamma)
        A = returns.advantage_v3_5(G, V.detach())
        if self.settings.critic == "mc":
            target = G
        else:
            target = batch.r + self.gamma * V_next * (1.0 - batch.terminated.float())
        yield pg_losses(logits, batch, A, self.settings.normalize_advantage, (V - target.detach()) ** 2)
