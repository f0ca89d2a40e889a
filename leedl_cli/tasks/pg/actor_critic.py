"""Advantage actor-critic, version 4 of LeeDL ch. 7.5: n_steps from every environment, one update per rollout,

    A_t = r_t + gamma V(s_t+1) - V(s_t)        (V(s_t+1) = 0 after a termination)
    L   = mean_t A_t e_t + value_coef * mean_t (V(s_t) - (r_t + gamma V(s_t+1)))^2

The critic learns by TD towards r_t + gamma V(s_t+1), a target held fixed in the update. With `gae_lambda` > 0
the advantage sums the TD errors of the steps that follow, A_t = sum_k (gamma lambda)^k delta_t+k (generalised
advantage estimation), and the critic's target is A_t + V(s_t).
"""
from __future__ import annotations

from typing import Iterator

from torch import nn

from leedl_cli.rl.rollout import Rollout
from leedl_cli.tasks import returns
from leedl_cli.tasks.pg.common import Algorithm, Losses, actor_and_critic, pg_losses


class AdvantageActorCritic(Algorithm):
    whole_episodes = False

    def updates(self, model: nn.Module, batch: Rollout) -> Iterator[Losses]:
        logits, V, V_next = actor_and_critic(model, batch)
        delta = returns.td_error(batch.r, V.detach(), V_next, batch.terminated, self.gamma)
        A = returns.gae(delta, batch.done, self.gamma, self.settings.gae_lambda)
        yield pg_losses(logits, batch, A, self.settings.normalize_advantage, (V - (A + V.detach())) ** 2)
