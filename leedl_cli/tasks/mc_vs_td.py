"""Monte Carlo vs temporal difference (LeeDL section 7.4.5): a critic watches the book's 8 episodes, gamma = 1.

    episode 1:     s_a, r=0, s_b, r=0, end
    episodes 2-7:  s_b, r=1, end
    episode 8:     s_b, r=0, end

Each critic (a `ValueTable` by default: one V per state) is trained by gradient descent on these transitions:
    MC:  V(s_t) -> G_t                        (the return that followed s_t in its episode)
    TD:  V(s_t) -> r_t + gamma V(s_t+1)        (V(end) = 0; the target is held fixed in each update)
Both find V(s_b) = 3/4; MC finds V(s_a) = 0 (the one time s_a was seen, 0 followed), TD finds V(s_a) = 3/4.
"""
from __future__ import annotations

import copy
import logging

import pytorch_lightning as pl
import torch

from leedl_cli.tasks import returns
from leedl_cli.tasks.base import LeedlTask

log = logging.getLogger(__name__)

S_A, S_B, END = 0, 1, -1
STATE_NAMES = {S_A: "s_a", S_B: "s_b"}
BOOK_EPISODES = [[(S_A, 0.0), (S_B, 0.0)]] + [[(S_B, 1.0)]] * 6 + [[(S_B, 0.0)]]
BOOK_VALUES = {"mc": {"s_a": 0.0, "s_b": 0.75}, "td": {"s_a": 0.75, "s_b": 0.75}}


def transitions(episodes=BOOK_EPISODES) -> dict[str, torch.Tensor]:
    """The episodes as transitions (s_t, r_t, s_t+1, done_t) in order; s_t+1 = END after the last step."""
    s, r, s_next, done = [], [], [], []
    for ep in episodes:
        for t, (state, reward) in enumerate(ep):
            last = t == len(ep) - 1
            s.append(state), r.append(reward), done.append(last)
            s_next.append(END if last else ep[t + 1][0])
    return {"s": torch.tensor(s), "r": torch.tensor(r), "s_next": torch.tensor(s_next), "done": torch.tensor(done)}


class Repeat:
    """The same batch `n` times (an iterable with a length, as Lightning wants of a loader)."""

    def __init__(self, batch, n: int) -> None:
        self.batch, self.n = batch, n

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        return iter([self.batch] * self.n)


class BookEpisodesDataModule(pl.LightningDataModule):
    """All transitions of the 8 episodes as one batch, shown `updates` times (one gradient step each)."""

    def __init__(self, n_states: int = 2, updates: int = 300) -> None:
        super().__init__()
        self.n_states, self.updates = n_states, updates

    def model_kwargs(self) -> dict:
        return {"n_states": self.n_states}

    def _batch(self) -> list[torch.Tensor]:
        b = transitions()
        return [b["s"], b["r"], b["s_next"], b["done"]]

    def train_dataloader(self):
        return Repeat(self._batch(), self.updates)

    def test_dataloader(self):
        return Repeat(self._batch(), 1)


class CriticFitting(LeedlTask):
    """Trains one copy of the critic per method in `critics` (mc, td) on the same episodes."""

    def __init__(self, model, optimizer=None, scheduler=None, critics: list[str] = ("mc", "td"),
                 gamma: float = 1.0) -> None:
        super().__init__(model, optimizer, scheduler)
        unknown = set(critics) - {"mc", "td"}
        if unknown:
            from leedl_cli.errors import LeedlError
            raise LeedlError(f"unknown critic training {sorted(unknown)}; choose from mc, td")
        self.critics = torch.nn.ModuleDict({c: copy.deepcopy(model) for c in critics})
        self.gamma = gamma

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
        return {c: {name: float(self.critics[c](torch.tensor([s]))[0]) for s, name in STATE_NAMES.items()}
                for c in self.critics}

    def test_step(self, batch, batch_idx) -> None:
        values = self.values()
        for c, vs in values.items():
            for name, value in vs.items():
                self.log(f"test/V_{name}_{c}", value, batch_size=1)
        self.results["mc_vs_td"] = {"values": values, "book": {c: BOOK_VALUES[c] for c in values},
                                    "gamma": self.gamma, "episodes": len(BOOK_EPISODES)}
        for c, vs in values.items():
            log.info("%s critic: V(s_a) = %.4f, V(s_b) = %.4f   (book: V(s_a) = %.2f, V(s_b) = %.2f)",
                     c.upper(), vs["s_a"], vs["s_b"], BOOK_VALUES[c]["s_a"], BOOK_VALUES[c]["s_b"])
