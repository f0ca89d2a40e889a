"""Actor and critic networks for policy gradients (LeeDL ch. 7): pi(a|s) as logits over discrete actions, V(s).

`shared=False`: two separate MLPs. `shared=True`: one trunk with an actor head and a critic head (Fig 7.30:
the actor and the critic share the first layers). `ValueTable` is the tabular critic of the MC-vs-TD example.
"""
from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from leedl_cli.contract import Provided

Activation = Literal["relu", "tanh"]
ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh}


def mlp(sizes: list[int], activation: Activation) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), ACTIVATIONS[activation]()]
    return nn.Sequential(*layers)


def _init(layer: nn.Linear, gain: float) -> None:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)


class ActorCritic(nn.Module):
    """forward(s) -> (logits of pi(.|s) [B, n_actions], V(s) [B])."""

    def __init__(self, obs_dim: Provided[int], n_actions: Provided[int], hidden: list[int] = (64, 64),
                 activation: Activation = "tanh", shared: bool = False, orthogonal_init: bool = True) -> None:
        super().__init__()
        sizes = [obs_dim, *hidden]
        self.shared = shared
        self.actor_body = mlp(sizes, activation)
        self.critic_body = self.actor_body if shared else mlp(sizes, activation)
        self.actor_head = nn.Linear(sizes[-1], n_actions)
        self.critic_head = nn.Linear(sizes[-1], 1)
        if orthogonal_init:
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    _init(m, math.sqrt(2))
            _init(self.actor_head, 0.01)
            _init(self.critic_head, 1.0)

    def actor(self, s: torch.Tensor) -> torch.Tensor:
        return self.actor_head(self.actor_body(s))

    def critic(self, s: torch.Tensor) -> torch.Tensor:
        return self.critic_head(self.critic_body(s)).squeeze(-1)

    def forward(self, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.shared:
            h = self.actor_body(s)
            return self.actor_head(h), self.critic_head(h).squeeze(-1)
        return self.actor(s), self.critic(s)


class ValueTable(nn.Module):
    """A tabular critic: V(s) is one number per state, all starting at `init`."""

    def __init__(self, n_states: Provided[int] = 2, init: float = 0.0) -> None:
        super().__init__()
        self.v = nn.Parameter(torch.full((n_states,), float(init)))

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return self.v[s]
