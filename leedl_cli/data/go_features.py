"""The feature planes the policy network sees: one float plane [19, 19] per feature, built batch by batch from
what is stored per position (`leedl_cli.data.go`: the stones from the mover's view, the liberties of each
stone's group, how many turns ago each stone was played, and for `alphago` the packed move features).

Feature sets (`task.data.features`):

- `basic` (7 planes): own stones, opponent stones, empty, liberties 1 / 2 / 3+ (of the group on the point), ones;
- `history` (15): basic + "turns since" (AlphaGo's 8 planes: the stone was played 1, 2, ..., 7, 8+ moves ago);
- `alphago` (48): the AlphaGo paper's input (Silver et al. 2016, Extended Data Table 2): stone colour (3), ones,
  turns since (8), liberties 1..8+ (8), and what each move would do: capture size (8), self-atari size (8),
  liberties after the move (8), ladder capture, ladder escape, sensibleness, zeros.

Plane 2 (`EMPTY_PLANE`) is "empty" in every set: the task uses it to give occupied points no probability.

The move features describe what *each candidate move* would do, so they are computed once per position (at
encoding time, cached with the positions; ~2 ms a position on one core) by `move_features`:

- capture size: opponent stones the move would capture;
- self-atari size: the stones of the mover's group left with one liberty by the move (0 if it is not self-atari);
- liberties after move: of the mover's group that the move forms (captures counted);
- sensibleness: legal and not filling one of the mover's own eyes (an empty point whose four neighbours are the
  mover's stones or the edge, with at most one opponent diagonal in the centre, none on the edge);
- ladder capture: the move puts an opponent group in atari and a ladder read says it cannot escape;
- ladder escape: the move extends the mover's group out of atari and a ladder read says it escapes.

Legal here means an empty point that is not suicide; ko is not part of a position's features (a move retaking a
ko counts as legal). The ladder reader follows the chased group only: the prey extends at its last liberty, or
captures an adjacent attacker group that is in atari; the attacker ataris at either liberty. A read that needs
more than `LADDER_BUDGET` positions counts as "not a ladder". Unit tests check each feature on hand-made boards.

What is stored per point is two int8 numbers (`pack`): capture size (0-7, 7 = 7+) | self-atari size (0-8) << 3 in
the first; liberties after move (0-8) | sensible << 4 | ladder capture << 5 | ladder escape << 6 in the second.
"""
from __future__ import annotations

from typing import Literal, get_args

import numpy as np
import torch

from leedl_cli.data.go_board import DIAG, NEIGH, NEIGH_BITS, POINTS, SIZE, flat_group, flat_play

FeatureSet = Literal["basic", "history", "alphago"]
FEATURE_SETS: dict[str, int] = dict(zip(get_args(FeatureSet), (7, 15, 48)))   # feature set -> number of planes
EMPTY_PLANE = 2
LADDER_BUDGET = 300


class _Budget:
    def __init__(self, n: int) -> None:
        self.left = n

    def spend(self) -> bool:
        self.left -= 1
        return self.left >= 0


def _prey_escapes(board: list, prey: int, budget: _Budget) -> bool:
    """The group on `prey` is in atari and its owner moves: can it get out of the ladder?"""
    if not budget.spend():
        return True                                   # unread: not proven a ladder
    colour = board[prey]
    stones, libs = flat_group(board, prey)
    if len(libs) != 1:
        return len(libs) >= 2
    # capturing an attacker group that is itself in atari, next to the prey, gets out
    for s in stones:
        for n in NEIGH[s]:
            if board[n] == 3 - colour and len(flat_group(board, n)[1]) == 1:
                return True
    (run,) = libs
    after = flat_play(board, run, colour)
    _, libs = flat_group(after, prey)
    if len(libs) >= 3:
        return True
    if len(libs) <= 1:
        return False
    return not _attacker_captures(after, prey, libs, budget)


def _attacker_captures(board: list, prey: int, libs: set, budget: _Budget) -> bool:
    """The prey (two liberties) is chased: does an atari at one of its liberties win the ladder?"""
    attacker = 3 - board[prey]
    for a in sorted(libs):
        after = flat_play(board, a, attacker)
        if not flat_group(after, a)[1]:                    # the atari stone would be captured at once
            continue
        if len(flat_group(after, prey)[1]) == 1 and not _prey_escapes(after, prey, budget):
            return True
    return False


def move_features(view: np.ndarray) -> np.ndarray:
    """The packed move features [2, 19, 19] int8 of a position seen from the player to move (view: 0 empty,
    1 the player to move, 2 the opponent), for every point."""
    board = view.reshape(-1).astype(np.int8).tolist()
    label = [0] * POINTS
    stones_of: list[int] = [0]
    libs_of: list[int] = [0]
    empty_bits = 0
    for p in range(POINTS):
        if board[p] == 0:
            empty_bits |= 1 << p
    for p in range(POINTS):
        if board[p] and not label[p]:
            stones, libs = flat_group(board, p)
            g = len(stones_of)
            s_bits = 0
            for s in stones:
                label[s] = g
                s_bits |= 1 << s
            stones_of.append(s_bits)
            libs_of.append(sum(1 << q for q in libs))
    nlibs = [b.bit_count() for b in libs_of]
    size = [b.bit_count() for b in stones_of]

    first = np.zeros(POINTS, np.int16)
    second = np.zeros(POINTS, np.int16)
    for p in range(POINTS):
        if board[p]:
            continue
        own = {label[n] for n in NEIGH[p] if board[n] == 1}
        opp = {label[n] for n in NEIGH[p] if board[n] == 2}
        captured = [g for g in opp if nlibs[g] == 1]
        capture = sum(size[g] for g in captured)
        new_stones = 1 << p
        lib = NEIGH_BITS[p] & empty_bits
        for g in own:
            new_stones |= stones_of[g]
            lib |= libs_of[g]
        for g in captured:                            # captured stones next to the new group become liberties
            rest = stones_of[g]
            while rest:
                low = rest & -rest
                q = low.bit_length() - 1
                if NEIGH_BITS[q] & new_stones:
                    lib |= low
                rest ^= low
        lib &= ~(1 << p)
        libs_after = lib.bit_count()
        if libs_after == 0:                           # suicide: illegal, no features
            continue
        self_atari = new_stones.bit_count() if libs_after == 1 else 0
        eye = all(board[n] == 1 for n in NEIGH[p]) and \
            sum(board[d] == 2 for d in DIAG[p]) <= (1 if len(NEIGH[p]) == 4 else 0)
        ladder_capture = ladder_escape = False
        # ladder capture: an opponent group with two liberties, one of them p, put in atari by p
        chased = [g for g in opp if nlibs[g] == 2]
        if chased:
            after = flat_play(board, p, 1)
            if flat_group(after, p)[1]:
                for g in chased:
                    prey = (stones_of[g] & -stones_of[g]).bit_length() - 1
                    if after[prey] == 2 and len(flat_group(after, prey)[1]) == 1 and \
                            not _prey_escapes(after, prey, _Budget(LADDER_BUDGET)):
                        ladder_capture = True
                        break
        # ladder escape: an own group in atari whose last liberty is p, and the extension gets away
        if any(nlibs[g] == 1 for g in own):
            after = flat_play(board, p, 1)
            _, libs = flat_group(after, p)
            if len(libs) >= 3:
                ladder_escape = True
            elif len(libs) == 2:
                ladder_escape = not _attacker_captures(after, p, libs, _Budget(LADDER_BUDGET))
        first[p] = min(capture, 7) | (min(self_atari, 8) << 3)
        second[p] = min(libs_after, 8) | ((not eye) << 4) | (ladder_capture << 5) | (ladder_escape << 6)
    return np.stack([first, second]).astype(np.int8).reshape(2, SIZE, SIZE)


def planes_from_pack(pack_a, pack_b):
    """The 28 move-feature planes (torch bool [N, 28, 19, 19]) from the packed int8 tensors [N, 19, 19]: capture
    size 0..6, 7+ (8, legal moves only), self-atari size 1..7, 8+ (8), liberties after move 1..7, 8+ (8), ladder
    capture, ladder escape, sensibleness (3) and a plane of zeros (1). Illegal points have none of them on."""
    a = pack_a.long() & 0xFF
    b = pack_b.long() & 0xFF
    capture, self_atari = a & 7, a >> 3
    libs_after = b & 15
    legal = libs_after > 0
    out = [legal & (capture == k) for k in range(7)] + [legal & (capture >= 7)]
    out += [self_atari == k for k in range(1, 8)] + [self_atari >= 8]
    out += [libs_after == k for k in range(1, 8)] + [libs_after >= 8]
    out += [(b >> 5) & 1 == 1, (b >> 6) & 1 == 1, legal & ((b >> 4) & 1 == 1)]
    out += [torch.zeros_like(legal)]
    return torch.stack(out, dim=1)


def planes(stones: torch.Tensor, libs: torch.Tensor, since: torch.Tensor, features: FeatureSet,
           pack: torch.Tensor | None = None) -> torch.Tensor:
    """Feature planes float [N, P, 19, 19] from the compact int8 tensors [N, 19, 19] (and, for `alphago`, the
    packed move features [N, 2, 19, 19])."""
    s = stones.long()
    libs = libs.long()
    t = since.long()
    ones = torch.ones_like(s, dtype=torch.bool)
    if features == "alphago":
        out = [s == 1, s == 2, s == 0, ones] + [t == k for k in range(1, 8)] + [t >= 8]
        out += [libs == k for k in range(1, 8)] + [libs >= 8]
        return torch.cat([torch.stack(out, dim=1), planes_from_pack(pack[:, 0], pack[:, 1])], dim=1).float()
    out = [s == 1, s == 2, s == 0, libs == 1, libs == 2, libs >= 3, ones]
    if features == "history":
        out += [t == k for k in range(1, 8)] + [t >= 8]
    return torch.stack(out, dim=1).float()
