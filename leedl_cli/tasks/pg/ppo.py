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
            logits_old, V_old = in_chunks(model, s, settings.forward_chunk)
            if settings.next_values_from_rows:
                V_next = next_values(model, batch, V_old.reshape(T, N), settings.forward_chunk)
            else:
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


def in_chunks(model: nn.Module, s: torch.Tensor, chunk: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """model(s) = (logits, V), `chunk` rows at a time (a CNN on CPU runs faster on 64 screens than on 1024)."""
    if chunk is None or len(s) <= chunk:
        return model(s)
    parts = [model(s[i:i + chunk]) for i in range(0, len(s), chunk)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def next_values(model: nn.Module, batch: Rollout, V: torch.Tensor, chunk: int | None) -> torch.Tensor:
    """V(s_t+1) [T, N]: where an episode goes on inside the rollout, s_t+1 is row t+1's s and its value is V[t+1];
    the critic runs only on the rest (the rollout's last row, and a finished episode's real last state)."""
    T, N = V.shape
    V_next = torch.empty_like(V)
    V_next[:-1] = V[1:]
    own = batch.done.clone()
    own[-1] = True
    if own.any():
        V_next[own] = in_chunks(model, batch.s_next[own], chunk)[1]
    return V_next
