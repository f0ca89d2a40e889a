"""The 8 episodes of LeeDL section 7.4.5 that a critic watches (gamma = 1):

    episode 1:     s_a, r=0, s_b, r=0, end
    episodes 2-7:  s_b, r=1, end
    episode 8:     s_b, r=0, end

as transitions (s_t, r_t, s_t+1, done_t); `END` stands for the state after an episode's last step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import pytorch_lightning as pl
import torch

from leedl_cli.contract import AtLeastOne

S_A, S_B, END = 0, 1, -1
STATE_NAMES = ("s_a", "s_b")          # state i is STATE_NAMES[i]
BOOK_EPISODES = [[(S_A, 0.0), (S_B, 0.0)]] + [[(S_B, 1.0)]] * 6 + [[(S_B, 0.0)]]


@dataclass(frozen=True)
class EpisodesSpec:
    n_states: int                    # states 0 .. n_states - 1 (END = -1 is not one)
    state_names: tuple[str, ...]     # the book's name of each state
    n_episodes: int                  # episodes the transitions come from


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
    """All transitions of the 8 episodes as one batch [s, r, s_next, done], shown `updates` times (one gradient
    step each)."""

    def __init__(self, updates: Annotated[int, AtLeastOne] = 300) -> None:
        super().__init__()
        self.updates = updates

    def provides(self) -> EpisodesSpec:
        return EpisodesSpec(n_states=len(STATE_NAMES), state_names=STATE_NAMES, n_episodes=len(BOOK_EPISODES))

    def _batch(self) -> list[torch.Tensor]:
        b = transitions()
        return [b["s"], b["r"], b["s_next"], b["done"]]

    def train_dataloader(self):
        return Repeat(self._batch(), self.updates)

    def test_dataloader(self):
        return Repeat(self._batch(), 1)
