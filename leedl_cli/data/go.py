"""Go positions from game records (SGF) for the policy network of chapter 2.8 (AlphaGo's supervised policy).

Each position of a game is one example: the board before a move, seen from the player to move, and that move
(one of 361 points) as the label. Passes are not examples. Games are split, not positions: the test and
validation games are held out whole, so no position of a test game was seen in training.

Where the games come from: `<data_dir>/go-sgf/kgs/*.tar.gz` (the KGS high-dan archives, u-go.net) by default,
`sgf_glob` picks other archives under `<data_dir>/go-sgf` (e.g. `cwi-historical-pre1900.tar.gz`), and `sgf_dir`
takes the user's own folder of `.sgf` files and/or `.tar.gz` / `.zip` archives of them. Games are listed in a
fixed order, shuffled with a fixed seed, and cut into `test_games`, `val_games` and `train_games` (split by game).
A damaged archive (cut short, not a gzip/tar/zip) or a game record that does not parse as SGF is a
CorruptDataError naming the file; a record of another board size is left out.

sgfmill parses the records and places handicap / setup stones (AB/AW); the moves are replayed on the board of
`leedl_cli.data.go_board`, which finds groups and liberties at every position anyway and captures from them. What
is stored per position is compact (int8 [19, 19] each): the stones (0 empty, 1 player to move, 2 opponent), the
liberties of the group each stone belongs to, and how many turns ago each stone was played (and for
`features=alphago` the packed move features of `leedl_cli.data.go_features`). It is computed once and cached
under `leedl_cli.paths.cache_dir("go-sgf", ...)`, keyed by the archives (names, sizes) and the games of each
split, written atomically. The feature planes (`leedl_cli.data.go_features`) are built from it batch by batch.

Eight-fold symmetry (`symmetries=true`): each training batch is turned/reflected by one of the 8 symmetries of
the board (the label moves with it).
"""
from __future__ import annotations

import glob
import hashlib
import json
import logging
import tarfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import pytorch_lightning as pl
import torch

from leedl_cli.atomic import replace_atomically
from leedl_cli.contract import AtLeastOne, NonNegative
from leedl_cli.data.files import reading
from leedl_cli.data.go_board import SIZE, groups, play, symmetry_tables, transform_board
from leedl_cli.data.go_features import FEATURE_SETS, FeatureSet, planes
from leedl_cli.data.go_features import move_features as features_of
from leedl_cli.data.memory import InMemoryLoader
from leedl_cli.errors import CorruptDataError, DataNotFoundError, LeedlError
from leedl_cli.paths import cache_dir, data_path

log = logging.getLogger(__name__)

SPLIT_SEED = 0
ENCODING_VERSION = 2        # bump when what is stored per position changes (invalidates the cache); 2: suicide fix
MOVE_FEATURES_VERSION = 1   # bump when go_features changes what it computes
DATASET = "Go game records"
HOW_TO_GET = "download the archive again (KGS: u-go.net/gamerecords) or take the damaged game out of your folder"
ARCHIVES = (".tar.gz", ".tgz", ".zip")


@dataclass(frozen=True)
class GoSpec:
    """What the Go data provides: the feature planes (`in_channels`) of a `board_size` x `board_size` board, and
    `data_info()`: games and positions of each split, the games found and the setup time (filled once the data
    is set up), which the task records in results.json."""

    in_channels: int
    board_size: int
    data_info: Callable[[], dict]


# ---- reading game records ---------------------------------------------------------------------------------------
def _is_record_file(path: Path) -> bool:
    return path.is_file() and (path.suffix.lower() == ".sgf" or path.name.lower().endswith(ARCHIVES))


def list_sources(root: str | None, sgf_glob: str, sgf_dir: str | None) -> list[Path]:
    """The archives / SGF files to read, sorted; a clear DataNotFoundError when there are none."""
    if sgf_dir:
        folder = Path(sgf_dir).expanduser()
        files = sorted(p for p in folder.rglob("*") if _is_record_file(p))
        if not files:
            raise DataNotFoundError(f"no game records in task.data.sgf_dir={sgf_dir}: looked for *.sgf, *.tar.gz "
                                    f"and *.zip files (recursively) in {folder}")
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
    """[(game id, SGF bytes)] of every .sgf file in the sources, in a fixed order; the game id is the file's name,
    or `<archive name>/<member>` inside an archive. A damaged archive is a CorruptDataError naming it."""
    games = []
    for src in sources:
        with reading(src, DATASET, HOW_TO_GET):
            if src.suffix.lower() == ".sgf":
                games.append((src.name, src.read_bytes()))
            elif src.suffix.lower() == ".zip":
                with zipfile.ZipFile(src) as zf:
                    games += sorted((f"{src.name}/{m.filename}", zf.read(m)) for m in zf.infolist()
                                    if not m.is_dir() and m.filename.lower().endswith(".sgf"))
            else:
                with tarfile.open(src, "r:*") as tar:   # read in stream order (a gzip stream cannot seek back)
                    games += sorted((f"{src.name}/{m.name}", tar.extractfile(m).read()) for m in tar
                                    if m.isfile() and m.name.lower().endswith(".sgf"))
    return games


def where_is(game_id: str, sources: list[Path]) -> str:
    """The file (and archive member) a game id of `read_games` came from."""
    name, _, member = game_id.partition("/")
    path = next((s for s in sources if s.name == name), name)
    return f"{path}, member {member}" if member else str(path)


# ---- replaying a game -------------------------------------------------------------------------------------------
def game_positions(record: bytes, move_features: bool = False, name: str = "an SGF record") -> tuple | None:
    """Replay one game: (stones [T,19,19] from the mover's view, liberties, turns since, moves [T]); None if the
    record is not a 19x19 game or has no move. The stones: 0 empty, 1 the player to move, 2 the opponent. With
    `move_features`, a fifth array: the packed move features [T, 2, 19, 19] (`go_features.move_features`).
    A record that does not parse as SGF is a CorruptDataError naming it (`name`)."""
    from sgfmill import boards, sgf

    try:
        game = sgf.Sgf_game.from_bytes(record)
        size = game.get_size()
        black, white, empty = game.get_root().get_setup_stones()
        sequence = game.get_main_sequence()[1:]
    except (ValueError, KeyError) as err:
        raise CorruptDataError(f"{DATASET}: cannot read {name}: it does not parse as an SGF game record ({err}).\n"
                               f"To fix: {HOW_TO_GET}.") from err
    if size != SIZE:
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


def encode_games(games: list[tuple[str, bytes]], move_features: bool = False,
                 sources: list[Path] = ()) -> dict[str, np.ndarray]:
    """The compact arrays of every position of the games (`sources`: where the games came from, to name a
    record that does not parse)."""
    parts = [game_positions(record, move_features, where_is(game_id, list(sources))) for game_id, record in games]
    parts = [p for p in parts if p is not None]
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


# ---- batches ------------------------------------------------------------------------------------------------------
class GoLoader(InMemoryLoader):
    """Batches of compact positions -> (feature planes, move); training batches may take a random symmetry."""

    def __init__(self, *tensors, features: FeatureSet, symmetries: bool = False, **kwargs) -> None:
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
                 train_games: Annotated[int, AtLeastOne] = 2000, val_games: Annotated[int, NonNegative] = 50,
                 test_games: Annotated[int, AtLeastOne] = 200, features: FeatureSet = "history",
                 symmetries: bool = False, batch_size: Annotated[int, AtLeastOne] = 256,
                 eval_batch_size: Annotated[int, AtLeastOne] = 1024, seed: int = 0, cache: bool = True) -> None:
        super().__init__()
        self.root, self.sgf_glob, self.sgf_dir = root, sgf_glob, sgf_dir
        self.train_games, self.val_games, self.test_games = int(train_games), int(val_games), int(test_games)
        self.features, self.symmetries, self.cache = features, bool(symmetries), cache
        self.batch_size, self.eval_batch_size, self.seed = batch_size, eval_batch_size, seed
        self.train = self.val = self.test = None
        self.info: dict = {}

    def provides(self) -> GoSpec:
        return GoSpec(in_channels=FEATURE_SETS[self.features], board_size=SIZE, data_info=self.data_info)

    def data_info(self) -> dict:
        """Games and positions of each split, games found, setup seconds (empty before `setup`)."""
        return dict(self.info)

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

    def _cache_path(self, name: str, games, sources) -> Path | None:
        if not self.cache:
            return None
        key_data = {"v": ENCODING_VERSION, "sources": [(s.name, s.stat().st_size) for s in sources],
                    "games": [g for g, _ in games]}
        if self.features == "alphago":   # a cache of its own: the other feature sets keep theirs
            key_data["move_features"] = MOVE_FEATURES_VERSION
        key = hashlib.sha256(json.dumps(key_data).encode()).hexdigest()[:20]
        kind = "-alphago" if self.features == "alphago" else ""
        return cache_dir("go-sgf") / f"{name}-{len(games)}games{kind}-{key}.npz"

    def _encoded(self, name: str, games, sources) -> dict[str, np.ndarray]:
        path = self._cache_path(name, games, sources)
        if path is not None and path.is_file():
            try:
                with np.load(path) as z:
                    return {k: z[k] for k in z.files}
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
                log.warning("cached positions %s unreadable (%s): encoding the games again", path, err)
        t0 = time.perf_counter()
        arrays = encode_games(games, self.features == "alphago", sources)
        log.info("encoded %d %s games (%d positions) in %.1f s", len(games), name, len(arrays["moves"]),
                 time.perf_counter() - t0)
        if path is not None:
            replace_atomically(path, lambda f: np.savez(f, **arrays), binary=True)
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
