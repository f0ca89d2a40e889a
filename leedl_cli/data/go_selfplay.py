"""Games as the data of AlphaGo's reinforcement-learning step (ch. 7.2.2): the policy makes its own data by playing.

`provides()` gives a `GoSelfPlaySpec`: the input the policy network needs (`in_channels` feature planes of the
`features` set of `leedl_cli.data.go_features` on a `board_size` board; it must be the set the supervised policy
was trained on) and the task's interfaces to the games:

- `start_selfplay(pairing)`: the train loader then yields one batch of `games_per_update` finished games per update,
  played when the trainer asks for it between the two policies `pairing()` returns (the learner, an opponent from
  the task's pool); the learner is black on the even boards, white on the odd ones;
- `play_games(a, b, n_games, seed)`: `n_games` games of a against b, `test_batch` boards at a time (a is black on
  the even boards of each batch: an even `test_batch` alternates the colours evenly), moves sampled from a
  generator seeded with `seed` (the test: the same draws for every run, whatever the run's random stream).

The rules, the pass, the end of a game and its score are `leedl_cli.go`'s: sensible moves only (legal, not filling
one's own eye), a pass when none is left, the end after two passes or `max_moves` plies, Tromp-Taylor area with
`komi`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Callable, Iterator

import pytorch_lightning as pl
import torch

from leedl_cli.contract import AtLeastOne
from leedl_cli.data.go_board import SIZE
from leedl_cli.data.go_features import FEATURE_SETS, FeatureSet
from leedl_cli.go.games import Games, Logits, play_games

Pairing = Callable[[], tuple[Logits, Logits]]
"""() -> (the learner's policy, the opponent's policy) for the next batch of training games."""


@dataclass(frozen=True)
class GoSelfPlaySpec:
    """What the self-play games give the policy network and the reinforcement-learning task."""

    in_channels: int
    board_size: int
    start_selfplay: Callable[[Pairing], None]
    play_games: Callable[[Logits, Logits, int, int], list[Games]]


class SelfPlayBatches:
    """The train loader: `updates` batches of games, each played when the trainer asks for the next one."""

    def __init__(self, play: Callable[[], Games], updates: int) -> None:
        self.play, self.updates = play, updates

    def __len__(self) -> int:
        return self.updates

    def __iter__(self) -> Iterator[Games]:
        for _ in range(self.updates):
            yield self.play()


class GoSelfPlayDataModule(pl.LightningDataModule):
    """`updates` batches of `games_per_update` games (one policy update each)."""

    def __init__(self, features: FeatureSet = "history", games_per_update: Annotated[int, AtLeastOne] = 32,
                 updates: Annotated[int, AtLeastOne] = 100, max_moves: Annotated[int, AtLeastOne] = 400,
                 komi: float = 7.5, test_batch: Annotated[int, AtLeastOne] = 64) -> None:
        super().__init__()
        self.features, self.games_per_update, self.updates = features, int(games_per_update), int(updates)
        self.max_moves, self.komi, self.test_batch = int(max_moves), float(komi), int(test_batch)
        self.pairing: Pairing | None = None

    def provides(self) -> GoSelfPlaySpec:
        return GoSelfPlaySpec(in_channels=FEATURE_SETS[self.features], board_size=SIZE,
                              start_selfplay=self.start_selfplay, play_games=self.play_match)

    def start_selfplay(self, pairing: Pairing) -> None:
        self.pairing = pairing

    def _training_games(self) -> Games:
        if self.pairing is None:
            raise RuntimeError("training games were asked for before the task called start_selfplay(pairing)")
        learner, opponent = self.pairing()
        return play_games(learner, opponent, self.games_per_update, self.features, self.max_moves, self.komi)

    def play_match(self, a: Logits, b: Logits, n_games: int, seed: int) -> list[Games]:
        """`n_games` games of a against b, `test_batch` boards at a time (a black on even boards), a's positions not
        kept; moves sampled from a generator seeded with `seed`."""
        generator = torch.Generator().manual_seed(int(seed))
        out = []
        for start in range(0, n_games, self.test_batch):
            out.append(play_games(a, b, min(self.test_batch, n_games - start), self.features, self.max_moves, self.komi,
                                  generator=generator, keep_a=False))
        return out

    def train_dataloader(self) -> SelfPlayBatches:
        return SelfPlayBatches(self._training_games, self.updates)

    def test_dataloader(self):
        return range(1)                # one evaluation match
