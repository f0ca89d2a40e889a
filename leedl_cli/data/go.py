"""Go positions from game records (SGF) for the policy network of chapter 2.8 (AlphaGo's supervised policy).

Each position of a game is one example: the board before a move, seen from the player to move, and that move
(one of 361 points) as the label. Passes are not examples. Games are split, not positions: the test and
validation games are held out whole, so no position of a test game was seen in training.

Where the games come from: `<data_dir>/go-sgf/kgs/*.tar.gz` (the KGS high-dan archives, u-go.net) by default,
`sgf_glob` picks other archives under `<data_dir>/go-sgf` (e.g. `cwi-historical-pre1900.tar.gz`), and `sgf_dir`
takes the user's own folder of `.sgf` files and/or `.tar.gz` archives of them. Games are listed in a fixed order,
shuffled with a fixed seed, and cut into `test_games`, `val_games` and `train_games` (split by game).

sgfmill parses the records and places handicap / setup stones (AB/AW); the moves are replayed on a numpy board
that finds groups and liberties at every position anyway and captures from them (tests check it against
sgfmill's own `boards.Board.play` over whole games). What is
stored per position is compact (int8 [19, 19] each): the stones (0 empty, 1 player to move, 2 opponent), the
liberties of the group each stone belongs to, and how many turns ago each stone was played. It is computed once
and cached under `leedl_cli.paths.cache_dir("go-sgf", ...)`, keyed by the archives (names, sizes) and the games
of each split, written atomically. The feature planes are built from it batch by batch:

- `basic` (7 planes): own stones, opponent stones, empty, liberties 1 / 2 / 3+ (of the group on the point), ones;
- `history` (15): basic + "turns since" (AlphaGo's 8 planes: the stone was played 1, 2, ..., 7, 8+ moves ago);
- `alphago` (48): the AlphaGo paper's input (Silver et al. 2016, Extended Data Table 2): stone colour (3), ones,
  turns since (8), liberties 1..8+ (8), and what each move would do: capture size (8), self-atari size (8),
  liberties after the move (8), ladder capture, ladder escape, sensibleness, zeros (`leedl_cli.data.go_features`).
  Those move features are computed per position when the games are encoded (~2 ms a position on one core, so
  ~15 min for 2,000 games, once: they are cached with the rest, in a cache of their own).

Plane 2 is always "empty": the task uses it to give occupied points no probability.
Eight-fold symmetry (`symmetries=true`): each training batch is turned/reflected by one of the 8 symmetries of
the board (the label moves with it).
"""
from __future__ import annotations

import glob
import hashlib
import io
import json
import logging
import os
import tarfile
import time
from pathlib import Path
from typing import Literal

import numpy as np
import pytorch_lightning as pl
import torch

from leedl_cli.data.memory import InMemoryLoader
from leedl_cli.errors import DataNotFoundError, LeedlError
from leedl_cli.paths import cache_dir, data_path

log = logging.getLogger(__name__)

SIZE = 19
POINTS = SIZE * SIZE
SPLIT_SEED = 0
ENCODING_VERSION = 2        # bump when what is stored per position changes (invalidates the cache); 2: suicide fix
FEATURE_SETS = {"basic": 7, "history": 15, "alphago": 48}
EMPTY_PLANE = 2
MOVE_FEATURES_VERSION = 1   # bump when go_features changes what it computes


# ---- reading game records ---------------------------------------------------------------------------------------
def list_sources(root: str | None, sgf_glob: str, sgf_dir: str | None) -> list[Path]:
    """The archives / SGF files to read, sorted; a clear DataNotFoundError when there are none."""
    if sgf_dir:
        folder = Path(sgf_dir).expanduser()
        files = sorted(p for p in folder.rglob("*") if p.is_file() and (p.suffix.lower() == ".sgf" or
                                                                         p.name.endswith((".tar.gz", ".tgz"))))
        if not files:
            raise DataNotFoundError(f"no game records in task.data.sgf_dir={sgf_dir}: looked for *.sgf and "
                                    f"*.tar.gz files (recursively) in {folder}")
        return files
    folder = data_path(root, "go-sgf")
    files = sorted(Path(p) for p in glob.glob(str(folder / sgf_glob)))
    if not files:
        raise DataNotFoundError(
            f"Go game records not found: looked for {folder / sgf_glob}.\n"
            f"To fix: download the KGS archives (u-go.net/gamerecords, the .tar.gz files) into {folder}/kgs, or "
            f"give your own folder of SGF files with task.data.sgf_dir=/path/to/sgf.\n"
            f"Or point leedl at a folder that has it: LEEDL_DATA_DIR=/path/to/data or data_dir=/path/to/data "
            f"(leedl looks in <data_dir>/go-sgf).")
    return files


def read_games(sources: list[Path]) -> list[tuple[str, bytes]]:
    """[(game id, SGF bytes)] of every .sgf file in the sources, in a fixed order."""
    games = []
    for src in sources:
        if src.suffix.lower() == ".sgf":
            games.append((src.name, src.read_bytes()))
            continue
        try:
            with tarfile.open(src, "r:*") as tar:   # read in stream order (a gzip stream cannot seek back)
                members = [(f"{src.name}/{m.name}", tar.extractfile(m).read()) for m in tar
                           if m.isfile() and m.name.lower().endswith(".sgf")]
            games += sorted(members)
        except (tarfile.TarError, EOFError, OSError) as err:
            raise DataNotFoundError(f"{src} is not a readable .tar.gz of SGF files ({type(err).__name__}: "
                                    f"{err}); download it again") from None
    return games


# ---- board features ---------------------------------------------------------------------------------------------
_CROSS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)   # 4-connected groups
_NEIGHBOURS = [(0, 1), (2, 1), (1, 0), (1, 2)]                  # offsets into a board padded by one


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


def play(board: np.ndarray, row: int, col: int, colour: int, lab: np.ndarray, libs: np.ndarray) -> np.ndarray:
    """The board after `colour` (1 or 2) plays at (row, col), given the groups and liberties before the move:
    opponent groups next to the point whose only liberty it was are captured; a move that leaves its own group
    without liberties (suicide, allowed by some rules) removes that group."""
    opp = 3 - colour
    new = board.copy()
    new[row, col] = colour
    near = [(row + dy, col + dx) for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1))
            if 0 <= row + dy < SIZE and 0 <= col + dx < SIZE]
    captured = {lab[p] for p in near if board[p] == opp and libs[lab[p]] == 1}
    for g in captured:
        new[lab == g] = 0
    if not captured and all(board[p] != 0 for p in near) and \
            all(libs[lab[p]] == 1 for p in near if board[p] == colour):   # no liberty left: suicide
        own = {lab[p] for p in near if board[p] == colour}
        for g in own:
            new[lab == g] = 0
        new[row, col] = 0
    return new


def game_positions(record: bytes, move_features: bool = False) -> tuple[np.ndarray, ...] | None:
    """Replay one game: (stones [T,19,19] from the mover's view, liberties, turns since, moves [T]); None if the
    record is not a 19x19 game or cannot be parsed. The stones: 0 empty, 1 the player to move, 2 the opponent.
    With `move_features`, a fifth array: the packed move features [T, 2, 19, 19] (`go_features.move_features`)."""
    from sgfmill import boards, sgf

    from leedl_cli.data.go_features import move_features as features_of

    try:
        game = sgf.Sgf_game.from_bytes(record)
        if game.get_size() != SIZE:
            return None
        black, white, empty = game.get_root().get_setup_stones()
        sequence = game.get_main_sequence()[1:]
    except (ValueError, KeyError):
        return None
    board = np.zeros((SIZE, SIZE), np.int8)   # 1 black, 2 white
    if black or white or empty:   # handicap / setup stones: sgfmill applies them (and removes dead groups)
        setup = boards.Board(SIZE)
        setup.apply_setup(black, white, empty)
        for colour, (r, c) in setup.list_occupied_points():
            board[r, c] = 1 if colour == "b" else 2
    played_at = np.zeros((SIZE, SIZE), np.int32)   # move number when the stone on the point was played (0: setup)
    out_stones, out_libs, out_since, out_moves, out_pack = [], [], [], [], []
    turn = 0
    for node in sequence:
        try:
            colour, move = node.get_move()
        except ValueError:
            break
        if colour is None:
            continue
        turn += 1
        if move is None:   # a pass: not an example
            continue
        row, col = move
        if board[row, col] != 0:   # a move onto a stone: a broken record; keep what came before
            break
        c = 1 if colour == "b" else 2
        lab, libs = groups(board)
        view = np.where(board == c, 1, np.where(board == 3 - c, 2, 0)).astype(np.int8)
        out_stones.append(view)
        out_libs.append(np.minimum(libs[lab], 127).astype(np.int8))
        out_since.append(np.where(board > 0, np.minimum(turn - played_at, 127), 0).astype(np.int8))
        out_moves.append(row * SIZE + col)
        if move_features:
            out_pack.append(features_of(view))
        board = play(board, row, col, c, lab, libs)
        played_at[row, col] = turn
    if not out_moves:
        return None
    out = (np.stack(out_stones), np.stack(out_libs), np.stack(out_since), np.array(out_moves, np.int16))
    return out + (np.stack(out_pack),) if move_features else out


def encode_games(games: list[tuple[str, bytes]], move_features: bool = False) -> dict[str, np.ndarray]:
    parts = [p for p in (game_positions(g, move_features) for _, g in games) if p is not None]
    if not parts:
        empty = {"stones": np.zeros((0, SIZE, SIZE), np.int8), "libs": np.zeros((0, SIZE, SIZE), np.int8),
                 "since": np.zeros((0, SIZE, SIZE), np.int8), "moves": np.zeros(0, np.int16), "games": np.array(0)}
        if move_features:
            empty["pack"] = np.zeros((0, 2, SIZE, SIZE), np.int8)
        return empty
    arrays = {"stones": np.concatenate([p[0] for p in parts]), "libs": np.concatenate([p[1] for p in parts]),
              "since": np.concatenate([p[2] for p in parts]), "moves": np.concatenate([p[3] for p in parts]),
              "games": np.array(len(parts))}
    if move_features:
        arrays["pack"] = np.concatenate([p[4] for p in parts])
    return arrays


def planes(stones: torch.Tensor, libs: torch.Tensor, since: torch.Tensor, features: str,
           pack: torch.Tensor | None = None) -> torch.Tensor:
    """Feature planes float [N, P, 19, 19] from the compact int8 tensors [N, 19, 19] (and, for `alphago`, the
    packed move features [N, 2, 19, 19])."""
    s = stones.long()
    libs = libs.long()
    t = since.long()
    ones = torch.ones_like(s, dtype=torch.bool)
    if features == "alphago":
        from leedl_cli.data.go_features import planes_from_pack

        out = [s == 1, s == 2, s == 0, ones] + [t == k for k in range(1, 8)] + [t >= 8]
        out += [libs == k for k in range(1, 8)] + [libs >= 8]
        return torch.cat([torch.stack(out, dim=1), planes_from_pack(pack[:, 0], pack[:, 1])], dim=1).float()
    out = [s == 1, s == 2, s == 0, libs == 1, libs == 2, libs >= 3, ones]
    if features == "history":
        out += [t == k for k in range(1, 8)] + [t >= 8]
    return torch.stack(out, dim=1).float()


def symmetry_tables() -> list[torch.Tensor]:
    """For each of the 8 board symmetries: where each point goes (index table over the 361 points)."""
    idx = torch.arange(POINTS).view(SIZE, SIZE)
    return [transform_board(idx, k).reshape(-1).argsort() for k in range(8)]


def transform_board(x: torch.Tensor, k: int) -> torch.Tensor:
    """Symmetry k (0-7) of the last two dimensions: k % 4 quarter turns, then a reflection when k >= 4."""
    y = torch.rot90(x, k % 4, dims=(-2, -1))
    return torch.flip(y, dims=(-1,)) if k >= 4 else y


class GoLoader(InMemoryLoader):
    """Batches of compact positions -> (feature planes, move); training batches may take a random symmetry."""

    def __init__(self, *tensors, features: str, symmetries: bool = False, **kwargs) -> None:
        super().__init__(*tensors, **kwargs)
        self.features, self.symmetries = features, symmetries
        self.tables = symmetry_tables() if symmetries else None

    def __iter__(self):
        gen = torch.Generator().manual_seed(self.seed * 100_003 + self.sampler.epoch + 31 * (self.rank + 1))
        for stones, libs, since, *pack, moves in super().__iter__():
            x = planes(stones, libs, since, self.features, *pack)
            y = moves.long()
            if self.symmetries:
                k = int(torch.randint(8, (1,), generator=gen))
                x = transform_board(x, k).contiguous()
                y = self.tables[k][y]
            yield x, y


class GoDataModule(pl.LightningDataModule):
    def __init__(self, root: str | None = None, sgf_glob: str = "kgs/*.tar.gz", sgf_dir: str | None = None,
                 train_games: int = 2000, val_games: int = 50, test_games: int = 200,
                 features: Literal["basic", "history", "alphago"] = "history",
                 symmetries: bool = False, batch_size: int = 256, eval_batch_size: int = 1024, seed: int = 0,
                 cache: bool = True) -> None:
        super().__init__()
        if features not in FEATURE_SETS:
            raise LeedlError(f"task.data.features={features!r}: accepted feature sets: "
                             f"{', '.join(f'{k} ({v} planes)' for k, v in FEATURE_SETS.items())}")
        for key, value in (("train_games", train_games), ("val_games", val_games), ("test_games", test_games)):
            if int(value) < (1 if key != "val_games" else 0):
                raise LeedlError(f"task.data.{key}={value}: must be a positive number of games")
        self.root, self.sgf_glob, self.sgf_dir = root, sgf_glob, sgf_dir
        self.train_games, self.val_games, self.test_games = int(train_games), int(val_games), int(test_games)
        self.features, self.symmetries, self.cache = features, bool(symmetries), cache
        self.batch_size, self.eval_batch_size, self.seed = batch_size, eval_batch_size, seed
        self.train = self.val = self.test = None
        self.info: dict = {}

    def model_kwargs(self) -> dict:
        return {"in_channels": FEATURE_SETS[self.features], "board_size": SIZE}

    def _split_games(self, games):
        order = np.random.default_rng(SPLIT_SEED).permutation(len(games))
        need = self.test_games + self.val_games + 1
        if len(games) < need:
            raise LeedlError(f"only {len(games)} games found, the split needs test_games={self.test_games} + "
                             f"val_games={self.val_games} + at least 1 training game")
        t, v = self.test_games, self.test_games + self.val_games
        return ([games[i] for i in order[v:v + self.train_games]], [games[i] for i in order[t:v]],
                [games[i] for i in order[:t]])

    def setup(self, stage: str | None = None) -> None:
        if self.train is not None:
            return
        t0 = time.perf_counter()
        sources = list_sources(self.root, self.sgf_glob, self.sgf_dir)
        games = read_games(sources)
        splits = dict(zip(("train", "val", "test"), self._split_games(games)))
        arrays = {name: self._encoded(name, part, sources) for name, part in splits.items()}
        for name, a in arrays.items():
            tensors = (torch.from_numpy(a["stones"]), torch.from_numpy(a["libs"]), torch.from_numpy(a["since"]),
                       *((torch.from_numpy(a["pack"]),) if "pack" in a else ()),
                       torch.from_numpy(a["moves"].astype(np.int64)))
            setattr(self, name, tensors)
        self.info = {f"{name}_games": int(arrays[name]["games"]) for name in arrays}
        self.info.update({f"{name}_positions": len(arrays[name]["moves"]) for name in arrays})
        self.info["games_found"] = len(games)
        self.info["setup_s"] = round(time.perf_counter() - t0, 2)
        log.info("go positions: %s", self.info)
        if len(self.train[0]) == 0:
            raise LeedlError("no training positions: the training games hold no 19x19 moves")

    def _encoded(self, name: str, games, sources) -> dict[str, np.ndarray]:
        move_features = self.features == "alphago"
        key_data = {"v": ENCODING_VERSION, "sources": [(s.name, s.stat().st_size) for s in sources],
                    "games": [g for g, _ in games]}
        if move_features:   # a cache of its own: the other feature sets keep theirs
            key_data["move_features"] = MOVE_FEATURES_VERSION
        key = hashlib.sha256(json.dumps(key_data).encode()).hexdigest()[:20]
        kind = "-alphago" if move_features else ""
        path = cache_dir("go-sgf") / f"{name}-{len(games)}games{kind}-{key}.npz" if self.cache else None
        if path is not None and path.is_file():
            with np.load(path) as z:
                return {k: z[k] for k in z.files}
        t0 = time.perf_counter()
        arrays = encode_games(games, move_features)
        log.info("encoded %d %s games (%d positions) in %.1f s", len(games), name, len(arrays["moves"]),
                 time.perf_counter() - t0)
        if path is not None:
            buf = io.BytesIO()
            np.savez(buf, **arrays)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_bytes(buf.getvalue())
            tmp.replace(path)
        return arrays

    def _dist(self) -> dict:
        trainer = getattr(self, "trainer", None)
        return {} if trainer is None else {"rank": trainer.global_rank, "world_size": trainer.world_size}

    def train_dataloader(self):
        return GoLoader(*self.train, features=self.features, symmetries=self.symmetries,
                        batch_size=self.batch_size, shuffle=True, seed=self.seed, **self._dist())

    def val_dataloader(self):
        return GoLoader(*self.val, features=self.features, batch_size=self.eval_batch_size, **self._dist())

    def test_dataloader(self):
        return GoLoader(*self.test, features=self.features, batch_size=self.eval_batch_size, **self._dist())
