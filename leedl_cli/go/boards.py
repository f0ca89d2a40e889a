"""A batch of Go boards [B, 19, 19] (0 empty, 1 black, 2 white) under the rules of `leedl_cli.data.go_board`, in
numpy over all boards at once: groups and liberties, the legal and the sensible moves of the player to move,
playing one move (or a pass) on every board, simple ko, and Tromp-Taylor area scoring.

- legal: an empty point, not the simple-ko point, and not suicide (the move captures something, or touches an
  empty point, or joins a group of its own colour that keeps another liberty);
- sensible (AlphaGo's "sensibleness"): legal and not filling one of the mover's own eyes (an empty point whose
  neighbours are all the mover's stones or the edge, with at most one opponent stone on its diagonals in the
  centre, none on the edge). A player with no sensible move passes;
- area score (Tromp-Taylor): a colour's stones plus the empty regions that reach only that colour; every stone
  counts as alive. `area_score` is black minus white, before komi (as `sgfmill.boards.Board.area_score`).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from leedl_cli.data.go_board import POINTS, SIZE

PASS = -1
OFF = 3                                             # the value of points off the board in the shifted views
_CROSS = np.zeros((3, 3, 3), bool)                  # 4-connected within one board, never across the batch
_CROSS[1] = [[0, 1, 0], [1, 1, 1], [0, 1, 0]]


def neighbours(a: np.ndarray, fill: int) -> np.ndarray:
    """[4, B, 19, 19]: the value of each point's neighbour above, below, left and right (`fill` off the board)."""
    p = np.pad(a, ((0, 0), (1, 1), (1, 1)), constant_values=fill)
    return np.stack([p[:, :-2, 1:-1], p[:, 2:, 1:-1], p[:, 1:-1, :-2], p[:, 1:-1, 2:]])


def diagonals(a: np.ndarray, fill: int) -> np.ndarray:
    """[4, B, 19, 19]: the value of each point's four diagonal points (`fill` off the board)."""
    p = np.pad(a, ((0, 0), (1, 1), (1, 1)), constant_values=fill)
    return np.stack([p[:, :-2, :-2], p[:, :-2, 2:], p[:, 2:, :-2], p[:, 2:, 2:]])


def groups(stones: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(group label of every point [B, 19, 19] (0 on empty points; labels are unique across the batch),
    liberties of each group [n_groups + 1]): the distinct empty points next to the group."""
    lab_b, nb = ndimage.label(stones == 1, _CROSS)
    lab_w, nw = ndimage.label(stones == 2, _CROSS)
    lab = lab_b + np.where(lab_w > 0, lab_w + nb, 0)
    near = np.moveaxis(neighbours(lab, 0), 0, -1)[stones == 0]       # [empty points, 4] labels next to each
    near.sort(axis=1)
    first = np.concatenate([near[:, :1] > 0, (near[:, 1:] != near[:, :-1]) & (near[:, 1:] > 0)], axis=1)
    return lab, np.bincount(near[first], minlength=nb + nw + 1)


def colour_grid(colour, n: int) -> np.ndarray:
    """The player to move of each board as [B, 1, 1] (one colour for all, or one per board)."""
    return np.broadcast_to(np.asarray(colour, np.int8).reshape(-1), (n,)).reshape(n, 1, 1)


def legal_moves(stones: np.ndarray, colour, ko: np.ndarray, lab: np.ndarray | None = None,
                libs: np.ndarray | None = None, sensible: bool = True) -> np.ndarray:
    """Bool [B, 361]: the points where `colour` (1/2, one or per board) may play; `ko`: [B] the simple-ko point
    (flat index) or -1. `sensible` also leaves out filling one's own eyes."""
    if lab is None:
        lab, libs = groups(stones)
    c = colour_grid(colour, len(stones))
    near = neighbours(stones, OFF)
    near_libs = neighbours(libs[lab], 0)
    own, opp = near == c, near == 3 - c
    breathes = (near == 0) | (own & (near_libs >= 2)) | (opp & (near_libs == 1))
    ok = (stones == 0) & breathes.any(0)
    flat = ok.reshape(len(stones), POINTS)
    has_ko = ko >= 0
    flat[np.flatnonzero(has_ko), ko[has_ko]] = False
    if sensible:
        flat &= ~own_eyes(stones, c, near).reshape(len(stones), POINTS)
    return flat


def own_eyes(stones: np.ndarray, c: np.ndarray, near: np.ndarray | None = None) -> np.ndarray:
    """Bool [B, 19, 19]: empty points that are an eye of colour c ([B, 1, 1]) by AlphaGo's sensibleness rule."""
    near = neighbours(stones, OFF) if near is None else near
    edge = (near == OFF).any(0)
    surrounded = ((near == c) | (near == OFF)).all(0)
    opp_diag = (diagonals(stones, OFF) == 3 - c).sum(0)
    return (stones == 0) & surrounded & (opp_diag <= np.where(edge, 0, 1))


def play(stones: np.ndarray, moves: np.ndarray, colour, lab: np.ndarray | None = None,
         libs: np.ndarray | None = None) -> np.ndarray:
    """Play `moves` ([B] flat points, PASS = -1 for no stone) for `colour` on every board, in place: opponent
    groups whose last liberty the move takes are captured. The moves must be legal (see `legal_moves`).
    Returns the simple-ko point of each board for the opponent's next move (-1: none): the move captured one
    stone, and the new stone touches no friend and no empty point."""
    if lab is None:
        lab, libs = groups(stones)
    n = len(stones)
    c = colour_grid(colour, n)[:, 0, 0]
    ko = np.full(n, -1, np.int64)
    on = np.flatnonzero(moves >= 0)
    if len(on) == 0:
        return ko
    r, col = np.divmod(moves[on], SIZE)
    near = neighbours(stones, OFF)[:, on, r, col]                    # [4, k] colours next to each move
    near_lab = neighbours(lab, 0)[:, on, r, col]
    mover = c[on]
    taken = (near == 3 - mover) & (libs[near_lab] == 1)
    captured = np.isin(lab[on], near_lab[taken]) if taken.any() else np.zeros((len(on), SIZE, SIZE), bool)
    alone = ((near == 3 - mover) | (near == OFF)).all(0)               # no friend, no empty point next to it
    single = captured.reshape(len(on), -1).sum(1) == 1
    for k in np.flatnonzero(single & alone):
        ko[on[k]] = int(np.flatnonzero(captured[k].reshape(-1))[0])
    sub = stones[on]
    sub[captured] = 0
    sub[np.arange(len(on)), r, col] = mover
    stones[on] = sub
    return ko


def area_score(stones: np.ndarray) -> np.ndarray:
    """Black minus white area ([B] float) by Tromp-Taylor: stones plus empty regions reaching one colour only."""
    empty = stones == 0
    reg, n = ndimage.label(empty, _CROSS)
    near = neighbours(stones, OFF)
    reaches = []
    for colour in (1, 2):
        touching = np.zeros(n + 1, bool)
        for d in range(4):
            touching[reg[empty & (near[d] == colour)]] = True
        reaches.append(touching)
    black_only = (reaches[0] & ~reaches[1])[reg] & empty
    white_only = (reaches[1] & ~reaches[0])[reg] & empty
    black = (stones == 1) | black_only
    white = (stones == 2) | white_only
    return (black.sum((1, 2)) - white.sum((1, 2))).astype(np.float64)
