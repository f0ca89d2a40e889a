"""What every policy-gradient algorithm shares: its settings, the losses of one update, and step 3 of algorithm
7.1, L = mean_t A_t e_t with e_t = cross-entropy(pi_theta(s_t), a_t) = -log pi_theta(a_t|s_t)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Iterator, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from leedl_cli.rl.rollout import Rollout
from leedl_cli.tasks.returns import Critic


@dataclass(frozen=True)
class Settings:
    gamma: float = 0.99                  # discount of later rewards
    critic: Critic = "td"                # version 3.5's critic
    gae_lambda: float = 0.0              # 0: version 4 exactly; > 0 sums its TD errors with weights (gamma lambda)^k
    normalize_advantage: bool = False    # A -> (A - mean A) / std A in each update
    baseline_momentum: float = 0.9       # version 3: b <- m b + (1 - m) mean G'
    ppo_epochs: int = 4                  # PPO: passes over each rollout
    ppo_minibatches: int = 4             # PPO: updates per pass
    ppo_clip: float = 0.2                # PPO: the importance ratio is clipped to [1 - clip, 1 + clip]
    forward_chunk: int | None = None     # PPO: pi_old, V_old over a rollout this many rows at a time (None: at once)
    next_values_from_rows: bool = False  # PPO: V(s_t+1) is row t+1's V(s); the critic runs only where s_t+1 is not


class Losses(NamedTuple):
    """The terms of one update's loss: policy - entropy_coef * entropy + value_coef * critic."""

    policy: torch.Tensor               # mean_t A_t e_t (PPO: the clipped surrogate)
    entropy: torch.Tensor              # mean entropy of pi(.|s_t): exploration
    critic: torch.Tensor | None        # mean (V(s_t) - target_t)^2; None without a critic


class Algorithm:
    """Turns one rollout into the losses of its update(s), one `Losses` per optimizer step."""

    whole_episodes: ClassVar[bool]     # collects whole episodes (Monte Carlo returns) rather than n_steps

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.gamma = settings.gamma

    def updates(self, model: nn.Module, batch: Rollout) -> Iterator[Losses]:
        raise NotImplementedError


def normalized(A: torch.Tensor, normalize: bool) -> torch.Tensor:
    return (A - A.mean()) / (A.std() + 1e-8) if normalize and A.numel() > 1 else A


def pg_losses(logits: torch.Tensor, batch: Rollout, A: torch.Tensor, normalize: bool,
              critic_loss: torch.Tensor | None = None) -> Losses:
    """L = mean_t A_t e_t over the valid steps, the policy's entropy, the critic's squared error ([T, N] in)."""
    valid = batch.valid.reshape(-1)
    A = normalized(A.reshape(-1)[valid], normalize)
    logits = logits[valid]
    e = F.cross_entropy(logits, batch.a.reshape(-1)[valid], reduction="none")   # e_t = -log pi(a_t|s_t)
    policy = (A * e).mean()
    entropy = torch.distributions.Categorical(logits=logits).entropy().mean()
    critic = critic_loss.reshape(-1)[valid].mean() if critic_loss is not None else None
    return Losses(policy, entropy, critic)


def actor_and_critic(model: nn.Module, batch: Rollout) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(logits of pi(.|s_t) [T*N, n_actions], V(s_t) [T, N], V(s_t+1) [T, N] without gradient)."""
    T, N = batch.a.shape
    logits, V = model(batch.s.reshape(T * N, -1))
    with torch.no_grad():
        V_next = model.critic(batch.s_next.reshape(T * N, -1)).reshape(T, N)
    return logits, V.reshape(T, N), V_next
