"""Proximal policy optimisation (PPO), the off-policy step of LeeDL ch. 7: version 4's advantages, but each rollout
is used for `ppo_epochs` passes of `ppo_minibatches` updates.

From the second update on, the data come from an older policy pi_old (the one that collected them), so each
step's term is weighted by the importance ratio, clipped so that theta cannot move far from pi_old:

    rho_t = pi_theta(a_t|s_t) / pi_old(a_t|s_t)
    L     = -mean_t min(rho_t A_t, clip(rho_t, 1 - eps, 1 + eps) A_t) + value_coef * mean_t (V(s_t) - V_target_t)^2

A_t (GAE over the TD errors r_t + gamma V(s_t+1) - V(s_t)) and V_target_t = A_t + V(s_t) come from the
collecting policy and critic, computed once per rollout.
"""
from __future__ import annotations

from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from leedl_cli.rl.rollout import Rollout
from leedl_cli.tasks import returns
from leedl_cli.tasks.pg.common import Algorithm, Losses, normalized


class PPO(Algorithm):
    whole_episodes = False

    def updates(self, model: nn.Module, batch: Rollout) -> Iterator[Losses]:
        settings, eps = self.settings, self.settings.ppo_clip
        T, N = batch.a.shape
        s, a = batch.s.reshape(T * N, -1), batch.a.reshape(-1)
        with torch.no_grad():   # the collecting policy pi_old and its critic
            logits_old, V_old = model(s)
            V_next = model.critic(batch.s_next.reshape(T * N, -1)).reshape(T, N)
            delta = returns.td_error(batch.r, V_old.reshape(T, N), V_next, batch.terminated, self.gamma)
            A_all = returns.gae(delta, batch.done, self.gamma, settings.gae_lambda).reshape(-1)
            V_target = A_all + V_old.reshape(-1)
            log_pi_old = -F.cross_entropy(logits_old, a, reduction="none")
        n = T * N
        size = max(1, n // settings.ppo_minibatches)
        for _ in range(settings.ppo_epochs):
            order = torch.randperm(n)
            for start in range(0, n, size):
                idx = order[start:start + size]
                logits, V = model(s[idx])
                A = normalized(A_all[idx], settings.normalize_advantage)
                log_pi = -F.cross_entropy(logits, a[idx], reduction="none")
                rho = (log_pi - log_pi_old[idx]).exp()
                clipped = rho.clamp(1 - eps, 1 + eps)
                policy = -torch.min(rho * A, clipped * A).mean()
                entropy = torch.distributions.Categorical(logits=logits).entropy().mean()
                yield Losses(policy, entropy, ((V - V_target[idx]) ** 2).mean())
