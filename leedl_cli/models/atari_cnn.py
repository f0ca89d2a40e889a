"""The Nature-DQN convolutional trunk (Mnih et al. 2015) with an actor head and a critic head: the network that
plays an Atari game from its screen (LeeDL ch. 7.2.1; the actor and the critic share the trunk, Fig 7.30).

    s (stack x 84 x 84 grey levels, / 255) -> conv 32 8x8 /4 -> conv 64 4x4 /2 -> conv 64 3x3 /1 -> linear 512
      -> actor head: logits of pi(.|s) over the joystick actions
      -> critic head: V(s)

Orthogonal initialisation as in CleanRL's ppo_atari: gain sqrt(2) in the trunk, 0.01 for the actor head (a
near-uniform first policy), 1 for the critic head.
"""
from __future__ import annotations

import math
from typing import Annotated

import torch
from torch import nn

from leedl_cli.contract import AtLeastOne, Provided


def _init(layer: nn.Module, gain: float) -> None:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)


class AtariCNN(nn.Module):
    """forward(s) -> (logits of pi(.|s) [B, n_actions], V(s) [B]); s is [B, C, H, W] or flattened [B, C*H*W],
    uint8 screens (or their float values 0..255)."""

    def __init__(self, in_channels: Provided[int] = 4, n_actions: Provided[int] = 6, frame_size: Provided[int] = 84,
                 hidden: Annotated[int, AtLeastOne] = 512, orthogonal_init: bool = True) -> None:
        super().__init__()
        self.in_channels, self.frame_size = in_channels, frame_size
        self.trunk = nn.Sequential(
            nn.Conv2d(in_channels, 32, 8, stride=4), nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            flat = self.trunk(torch.zeros(1, in_channels, frame_size, frame_size)).shape[1]   # 3136 at 84 x 84
        self.trunk.append(nn.Linear(flat, hidden))
        self.trunk.append(nn.ReLU())
        self.actor_head = nn.Linear(hidden, n_actions)
        self.critic_head = nn.Linear(hidden, 1)
        if orthogonal_init:
            for m in self.trunk:
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    _init(m, math.sqrt(2))
            _init(self.actor_head, 0.01)
            _init(self.critic_head, 1.0)

    def features(self, s: torch.Tensor) -> torch.Tensor:
        x = s.reshape(-1, self.in_channels, self.frame_size, self.frame_size)
        return self.trunk(x.float() / 255.0)

    def actor(self, s: torch.Tensor) -> torch.Tensor:
        return self.actor_head(self.features(s))

    def critic(self, s: torch.Tensor) -> torch.Tensor:
        return self.critic_head(self.features(s)).squeeze(-1)

    def forward(self, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(s)
        return self.actor_head(h), self.critic_head(h).squeeze(-1)
