"""Monte Carlo vs temporal difference (LeeDL section 7.4.5): a critic watches the book's 8 episodes
(leedl_cli.data.book_episodes), gamma = 1.

Each critic (a `ValueTable` by default: one V per state) is trained by gradient descent on these transitions:
    MC:  V(s_t) -> G_t                        (the return that followed s_t in its episode)
    TD:  V(s_t) -> r_t + gamma V(s_t+1)        (V(end) = 0; the target is held fixed in each update)
Both find V(s_b) = 3/4; MC finds V(s_a) = 0 (the one time s_a was seen, 0 followed), TD finds V(s_a) = 3/4.
"""
from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Annotated, get_args

import torch

from leedl_cli.contract import Probability, Provided
from leedl_cli.data.book_episodes import END
from leedl_cli.tasks import returns
from leedl_cli.tasks.base import LeedlTask
from leedl_cli.tasks.returns import Critic

log = logging.getLogger(__name__)

CRITICS = get_args(Critic)
BOOK_VALUES = {"mc": {"s_a": 0.0, "s_b": 0.75}, "td": {"s_a": 0.75, "s_b": 0.75}}


class CriticFitting(LeedlTask):
    """Trains one copy of the critic per method in `critics` (mc, td) on the same episodes."""

    def __init__(self, model, optimizer=None, scheduler=None, run_dir: Path | None = None,
                 state_names: Provided[tuple[str, ...]] = ("s_a", "s_b"), n_episodes: Provided[int] = 8,
                 critics: list[Critic] = ("mc", "td"), gamma: Annotated[float, Probability] = 1.0) -> None:
        super().__init__(model, optimizer, scheduler, run_dir=run_dir)
        self.critics = torch.nn.ModuleDict({c: copy.deepcopy(model) for c in critics})
        self.state_names, self.n_episodes = tuple(state_names), n_episodes
        self.gamma = gamma

    @classmethod
    def config_problems(cls, options: dict) -> list[str]:
        critics = list(options.get("critics") or ())
        unknown = [c for c in critics if c not in CRITICS]
        if unknown:
            return [f"critics={critics}: expected a list of {', '.join(CRITICS)} (not {', '.join(map(str, unknown))})"]
        return []

    def parameters_to_optimize(self):
        return list(self.critics.parameters())

    def V(self, critic: str, s: torch.Tensor) -> torch.Tensor:
        """V(s), with V(end) = 0."""
        v = self.critics[critic](s.clamp(min=0))
        return torch.where(s == END, torch.zeros_like(v), v)

    def critic_loss(self, critic: str, s, r, s_next, done) -> torch.Tensor:
        v = self.V(critic, s)
        if critic == "mc":
            target = returns.reward_to_go(r[:, None], done[:, None], self.gamma)[:, 0]   # G_t of each visit
        else:
            target = r + self.gamma * self.V(critic, s_next).detach()
        return ((v - target) ** 2).mean()

    def training_step(self, batch, batch_idx):
        loss = sum(self.critic_loss(c, *batch) for c in self.critics)
        self.log("train/loss", loss, on_step=True, on_epoch=False, batch_size=1)
        return loss

    @torch.no_grad()
    def values(self) -> dict[str, dict[str, float]]:
        return {c: {name: float(self.critics[c](torch.tensor([s]))[0]) for s, name in enumerate(self.state_names)}
                for c in self.critics}

    def test_step(self, batch, batch_idx) -> None:
        values = self.values()
        for c, vs in values.items():
            for name, value in vs.items():
                self.log(f"test/V_{name}_{c}", value, batch_size=1)
        self.results["mc_vs_td"] = {"values": values, "book": {c: BOOK_VALUES[c] for c in values},
                                    "gamma": self.gamma, "episodes": self.n_episodes}
        for c, vs in values.items():
            log.info("%s critic: V(s_a) = %.4f, V(s_b) = %.4f   (book: V(s_a) = %.2f, V(s_b) = %.2f)",
                     c.upper(), vs["s_a"], vs["s_b"], BOOK_VALUES[c]["s_a"], BOOK_VALUES[c]["s_b"])
