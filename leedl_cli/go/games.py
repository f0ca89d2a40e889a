"""Whole games between two policies, many boards at once: every ply, one forward pass of the policy to move over
the boards where it moves (AlphaGo's self-play, ch. 7.2.2).

A policy is a function from feature planes [N, C, 19, 19] to logits over the 361 points. Its move is sampled from
the softmax over the *sensible* points (`leedl_cli.go.boards`); the network has no pass output, so a player passes
when no sensible point is left. A game ends after two passes in a row or after `max_moves` plies, and is scored by
area (Tromp-Taylor) with komi: black wins when black area - white area - komi > 0.

Player A is black on the even boards and white on the odd ones, so a batch of games has both colours equally.
What A saw and did is kept (the compact arrays of `leedl_cli.data.go`, the sensible points, the move): REINFORCE
raises or lowers the log-probability of exactly those moves.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from leedl_cli.data.go_board import POINTS, SIZE
from leedl_cli.data.go_features import FeatureSet, move_features, planes
from leedl_cli.go.boards import PASS, area_score, groups, legal_moves, play

Logits = Callable[[torch.Tensor], torch.Tensor]
"""feature planes [N, C, 19, 19] -> logits [N, 361]."""
MASKED = -1e9


@dataclass
class Games:
    """A batch of finished games of player A against player B, and A's moves in them."""

    features: FeatureSet
    a_black: np.ndarray                  # [G] bool: A played black
    score: np.ndarray                    # [G] black area - white area (before komi)
    komi: float
    length: np.ndarray                   # [G] plies played (passes included)
    by_passes: np.ndarray                # [G] bool: ended by two passes (else by the move cap)
    moves: list[list[int]]               # [G] the moves in order, black first (flat point, PASS = -1)
    positions: dict[str, torch.Tensor] = field(default_factory=dict)
    """A's positions: stones, libs, since (int8 [M, 19, 19]), pack (alphago), sensible (bool [M, 361]),
    action (long [M]), game (long [M]: which game)."""

    @property
    def a_wins(self) -> np.ndarray:
        """[G] bool: A won the game."""
        black_wins = self.score - self.komi > 0
        return black_wins == self.a_black

    @property
    def z(self) -> torch.Tensor:
        """[G] the outcome from A's side: +1 a win, -1 a loss."""
        return torch.from_numpy(np.where(self.a_wins, 1.0, -1.0).astype(np.float32))

    def __len__(self) -> int:
        return len(self.score)

    def planes(self, rows: slice | torch.Tensor) -> torch.Tensor:
        """The feature planes of A's positions `rows`, as the policy saw them."""
        p = self.positions
        pack = (p["pack"][rows],) if "pack" in p else ()
        return planes(p["stones"][rows], p["libs"][rows], p["since"][rows], self.features, *pack)

    def result(self, g: int) -> str:
        """SGF's RE of game g: 'B+3.5' / 'W+12.5'."""
        margin = float(self.score[g] - self.komi)
        return f"B+{margin:g}" if margin > 0 else f"W+{-margin:g}"


def compact(stones: np.ndarray, colour: int, libs_at: np.ndarray, since: np.ndarray) -> tuple:
    """The stored arrays of positions (as `leedl_cli.data.go`): stones from the mover's view (1 own, 2 opponent),
    the liberties of each stone's group, turns since each stone was played."""
    view = np.where(stones == colour, 1, np.where(stones == 3 - colour, 2, 0)).astype(np.int8)
    return view, np.minimum(libs_at, 127).astype(np.int8), np.minimum(since, 127).astype(np.int8)


@torch.no_grad()
def choose(policy: Logits, x: torch.Tensor, sensible: torch.Tensor,
           generator: torch.Generator | None) -> torch.Tensor:
    """A move per board sampled from the policy's softmax over the sensible points."""
    logits = policy(x).float().masked_fill(~sensible, MASKED)
    return torch.multinomial(logits.softmax(-1), 1, generator=generator)[:, 0]


def play_games(a: Logits, b: Logits, n_games: int, features: FeatureSet, max_moves: int = 400,
               komi: float = 7.5, generator: torch.Generator | None = None, keep_a: bool = True) -> Games:
    """`n_games` games of policy `a` against policy `b` on as many boards at once (a is black on even boards);
    moves are sampled with `generator` (None: torch's global random stream). `keep_a`: keep a's positions."""
    stones = np.zeros((n_games, SIZE, SIZE), np.int8)
    played_at = np.zeros((n_games, SIZE, SIZE), np.int32)
    ko = np.full(n_games, -1, np.int64)
    a_black = np.arange(n_games) % 2 == 0
    passes = np.zeros(n_games, np.int64)
    length = np.zeros(n_games, np.int64)
    done = np.zeros(n_games, bool)
    moves: list[list[int]] = [[] for _ in range(n_games)]
    kept: dict[str, list] = {k: [] for k in ("stones", "libs", "since", "pack", "sensible", "action", "game")}
    ply = 0
    while not done.all() and ply < max_moves:
        colour = 1 if ply % 2 == 0 else 2
        lab, libs = groups(stones)
        sensible = legal_moves(stones, colour, ko, lab, libs)
        chosen = np.full(n_games, PASS, np.int64)
        can = ~done & sensible.any(1)
        since = np.where(stones > 0, ply + 1 - played_at, 0)
        a_moves = a_black if colour == 1 else ~a_black
        for is_a, policy, whose in ((True, a, a_moves), (False, b, ~a_moves)):
            rows = np.flatnonzero(can & whose)
            if len(rows) == 0:
                continue
            view, lib8, since8 = compact(stones[rows], colour, libs[lab[rows]], since[rows])
            pack = np.stack([move_features(v) for v in view]) if features == "alphago" else None
            t = [torch.from_numpy(v) for v in (view, lib8, since8)]
            x = planes(*t, features, *(() if pack is None else (torch.from_numpy(pack),)))
            mask = torch.from_numpy(sensible[rows])
            picked = choose(policy, x, mask, generator)
            chosen[rows] = picked.numpy()
            if keep_a and is_a:
                for key, value in zip(("stones", "libs", "since", "sensible", "action"), (*t, mask, picked)):
                    kept[key].append(value)
                if pack is not None:
                    kept["pack"].append(torch.from_numpy(pack))
                kept["game"].append(torch.from_numpy(rows))
        ko = play(stones, np.where(done, PASS, chosen), colour, lab, libs)
        on = np.flatnonzero(chosen >= 0)
        played_at.reshape(n_games, POINTS)[on, chosen[on]] = ply + 1
        for g in np.flatnonzero(~done):
            moves[g].append(int(chosen[g]))
        passes = np.where(chosen == PASS, passes + 1, 0)
        length += ~done
        done |= passes >= 2
        ply += 1
    positions = {k: torch.cat(v) for k, v in kept.items() if v}
    if "game" in positions:
        positions["game"] = positions["game"].long()
        positions["action"] = positions["action"].long()
    return Games(features, a_black, area_score(stones), float(komi), length, done.copy(), moves, positions)


def to_sgf(games: Games, which: list[int], a_name: str, b_name: str) -> bytes:
    """An SGF collection of games `which` (one game tree each; sgfmill writes them)."""
    from sgfmill import sgf

    out = []
    for g in which:
        game = sgf.Sgf_game(size=SIZE)
        root = game.get_root()
        black, white = (a_name, b_name) if games.a_black[g] else (b_name, a_name)
        root.set("PB", black)
        root.set("PW", white)
        root.set("KM", games.komi)
        root.set("RU", "Tromp-Taylor (area scoring, simple ko, no suicide)")
        root.set("RE", games.result(g))
        for i, move in enumerate(games.moves[g]):
            node = game.extend_main_sequence()
            node.set_move("b" if i % 2 == 0 else "w", None if move == PASS else divmod(move, SIZE))
        out.append(game.serialise())
    return b"".join(out)
