"""The Go board and its rules: groups and liberties, captures, suicide, simple ko, legality, and the eight symmetries
of the board. Tests check the captures and the ko points against sgfmill's own `boards.Board.play` over whole games.

Two views of one board, for two speeds of use:

- a numpy array [19, 19] of 0 empty / 1 / 2 (the two colours): `groups` labels every group at once and counts its
  liberties, `play` applies a move, `simple_ko` and `is_legal` say what the opponent may do next. Replaying a game
  record goes this way (the groups and liberties of every position are stored anyway).
- a flat list of 361 points (`flat_group`, `flat_play`, the `NEIGH` / `DIAG` tables): one group at a time, cheap to
  copy, for reading out what a single move would do (`leedl_cli.data.go_features`, ladders).

Rules: a move that leaves opponent groups without liberties captures them; a move that leaves its own group
without liberties (suicide) removes that group, as some rule sets allow and sgfmill does; simple ko: a single stone
that captured a single stone and stands with that one liberty may not be retaken at once.
"""
from __future__ import annotations

import numpy as np
import torch

SIZE = 19
POINTS = SIZE * SIZE

_CROSS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)   # 4-connected groups
_NEIGHBOURS = [(0, 1), (2, 1), (1, 0), (1, 2)]                  # offsets into a board padded by one


# ---- the board as an array --------------------------------------------------------------------------------------
def groups(stones: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(group label of each point [19,19] (0 on empty), liberties of each group [n_groups + 1]) for a board of
    0 empty / 1 / 2 (the two colours). A liberty is an empty point next to the group, counted once."""
    from scipy import ndimage

    lab_a, na = ndimage.label(stones == 1, _CROSS)
    lab_b, nb = ndimage.label(stones == 2, _CROSS)
    lab = lab_a + np.where(lab_b > 0, lab_b + na, 0)
    ys, xs = np.nonzero(stones == 0)
    pad = np.zeros((SIZE + 2, SIZE + 2), lab.dtype)
    pad[1:-1, 1:-1] = lab
    touches = np.zeros((na + nb + 1, POINTS), bool)
    flat = ys * SIZE + xs
    for dy, dx in _NEIGHBOURS:
        touches[pad[ys + dy, xs + dx], flat] = True
    libs = touches.sum(axis=1)
    libs[0] = 0
    return lab, libs


def group_liberties(stones: np.ndarray) -> np.ndarray:
    """Each stone's group's number of liberties (0 on empty points)."""
    lab, libs = groups(stones)
    return libs[lab]


def _near(row: int, col: int) -> list[tuple[int, int]]:
    return [(row + dy, col + dx) for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1))
            if 0 <= row + dy < SIZE and 0 <= col + dx < SIZE]


def _captured(board: np.ndarray, row: int, col: int, colour: int, lab: np.ndarray, libs: np.ndarray) -> set:
    """Labels of the opponent groups next to (row, col) whose only liberty it is."""
    return {lab[p] for p in _near(row, col) if board[p] == 3 - colour and libs[lab[p]] == 1}


def _suicide(board: np.ndarray, row: int, col: int, colour: int, lab: np.ndarray, libs: np.ndarray) -> bool:
    """The move captures nothing and leaves its own group without liberties."""
    near = _near(row, col)
    return not _captured(board, row, col, colour, lab, libs) and all(board[p] != 0 for p in near) and \
        all(libs[lab[p]] == 1 for p in near if board[p] == colour)


def play(board: np.ndarray, row: int, col: int, colour: int, lab: np.ndarray, libs: np.ndarray) -> np.ndarray:
    """The board after `colour` (1 or 2) plays at (row, col), given the groups and liberties before the move:
    opponent groups next to the point whose only liberty it was are captured; a move that leaves its own group
    without liberties (suicide, allowed by some rules) removes that group."""
    new = board.copy()
    new[row, col] = colour
    for g in _captured(board, row, col, colour, lab, libs):
        new[lab == g] = 0
    if _suicide(board, row, col, colour, lab, libs):
        for g in {lab[p] for p in _near(row, col) if board[p] == colour}:
            new[lab == g] = 0
        new[row, col] = 0
    return new


def simple_ko(board: np.ndarray, row: int, col: int, colour: int, lab: np.ndarray,
              libs: np.ndarray) -> tuple[int, int] | None:
    """The point the opponent may not play at next after `colour` plays at (row, col) (given the groups and
    liberties before the move), or None: the move captured exactly one stone, and the new stone has no friend next
    to it and no liberty but the point it captured (so retaking would capture it back, one for one)."""
    captured = _captured(board, row, col, colour, lab, libs)
    if len(captured) != 1:
        return None
    (g,) = captured
    if int((lab == g).sum()) != 1:
        return None
    near = _near(row, col)
    if any(board[p] == colour for p in near) or sum(board[p] == 0 for p in near):
        return None
    (r, c) = np.argwhere(lab == g)[0]
    return int(r), int(c)


def is_legal(board: np.ndarray, row: int, col: int, colour: int, lab: np.ndarray, libs: np.ndarray,
             ko: tuple[int, int] | None = None, suicide_allowed: bool = False) -> bool:
    """Whether `colour` may play at (row, col): an empty point, not the ko point, and not suicide (unless the
    rules allow it)."""
    if board[row, col] != 0 or (row, col) == ko:
        return False
    return suicide_allowed or not _suicide(board, row, col, colour, lab, libs)


# ---- the board as a flat list (fast single-group reads) ----------------------------------------------------------
def _tables():
    neigh, diag, bits = [], [], []
    for p in range(POINTS):
        r, c = divmod(p, SIZE)
        n = [(r + dr) * SIZE + c + dc for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1))
             if 0 <= r + dr < SIZE and 0 <= c + dc < SIZE]
        d = [(r + dr) * SIZE + c + dc for dr, dc in ((-1, -1), (-1, 1), (1, -1), (1, 1))
             if 0 <= r + dr < SIZE and 0 <= c + dc < SIZE]
        neigh.append(n)
        diag.append(d)
        bits.append(sum(1 << q for q in n))
    return neigh, diag, bits


NEIGH, DIAG, NEIGH_BITS = _tables()
"""Per point of the flat board: its 4 neighbours, its diagonal points, and the neighbours as a bit set."""


def flat_group(board: list, p: int) -> tuple[set, set]:
    """(stones, liberties) of the group on point p of a flat board (0 empty, 1, 2)."""
    colour = board[p]
    stones, libs, todo = {p}, set(), [p]
    while todo:
        q = todo.pop()
        for n in NEIGH[q]:
            if board[n] == 0:
                libs.add(n)
            elif board[n] == colour and n not in stones:
                stones.add(n)
                todo.append(n)
    return stones, libs


def flat_play(board: list, p: int, colour: int) -> list:
    """A new flat board with `colour` on p and the opponent groups it leaves without liberties removed (the mover's
    own group is left as it is: callers that read ladders check its liberties themselves)."""
    new = list(board)
    new[p] = colour
    for n in NEIGH[p]:
        if new[n] == 3 - colour:
            stones, libs = flat_group(new, n)
            if not libs:
                for s in stones:
                    new[s] = 0
    return new


# ---- the eight symmetries -----------------------------------------------------------------------------------------
def transform_board(x: torch.Tensor, k: int) -> torch.Tensor:
    """Symmetry k (0-7) of the last two dimensions: k % 4 quarter turns, then a reflection when k >= 4."""
    y = torch.rot90(x, k % 4, dims=(-2, -1))
    return torch.flip(y, dims=(-1,)) if k >= 4 else y


def symmetry_tables() -> list[torch.Tensor]:
    """For each of the 8 board symmetries: where each point goes (index table over the 361 points)."""
    idx = torch.arange(POINTS).view(SIZE, SIZE)
    return [transform_board(idx, k).reshape(-1).argsort() for k in range(8)]
