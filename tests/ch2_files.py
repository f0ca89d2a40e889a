"""Small data files in the real formats of chapter 2's data sets, written by the tests (no mirror needed):
IDX .gz (MNIST, Fashion-MNIST), CIFAR-10 python pickle batches, SGF game records in a .tar.gz (KGS layout)."""
from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile

import numpy as np

IDX_NAMES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


def write_idx(path, array: np.ndarray, compresslevel: int = 9) -> None:
    """An IDX file (MNIST's format), gzipped: magic 0 0 8 ndim, the dims big-endian, then uint8 data. The one IDX
    writer of the tests (MNIST, Fashion-MNIST, the MNIST side of MNIST-M)."""
    array = np.asarray(array, np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb", compresslevel=compresslevel) as f:
        f.write(header + array.tobytes())


def bar_images(n: int, seed: int, size: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """Class k: a bright horizontal bar at row 2 + 2k, at a random column offset, plus noise: learnable, easy."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    x = rng.integers(0, 40, (n, size, size))
    for i, k in enumerate(y):
        c = rng.integers(0, size - 12)
        x[i, 2 + 2 * k: 4 + 2 * k, c:c + 12] = 255
    return x.astype(np.uint8), y.astype(np.uint8)


def write_idx_set(folder, n_train: int = 600, n_test: int = 200) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    xtr, ytr = bar_images(n_train, 0)
    xte, yte = bar_images(n_test, 1)
    for name, a in zip(IDX_NAMES, (xtr, ytr, xte, yte)):
        write_idx(folder / name, a)


def write_cifar(folder, n_per_batch: int = 40) -> None:
    d = folder / "cifar10" / "cifar-10-batches-py"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8),
                 b"labels": rng.integers(0, 10, n_per_batch).tolist(), b"batch_label": name.encode()}
        with open(d / name, "wb") as f:
            pickle.dump(batch, f)


LETTERS = "abcdefghijklmnopqrs"


def sgf_point(row: int, col: int) -> str:
    """sgfmill's (row, col) has row 0 at the bottom; SGF's second letter counts from the top."""
    return LETTERS[col] + LETTERS[18 - row]


def sgf_game(moves: list[tuple[int, int] | None], setup_black: list[tuple[int, int]] = (), size: int = 19) -> bytes:
    head = f"(;GM[1]FF[4]SZ[{size}]"
    if setup_black:
        head += "AB" + "".join(f"[{sgf_point(*p)}]" for p in setup_black)
    body = ""
    colour = "W" if setup_black else "B"
    for m in moves:
        body += f";{colour}[{'' if m is None else sgf_point(*m)}]"
        colour = "W" if colour == "B" else "B"
    return (head + body + ")").encode()


def random_game(rng: np.random.Generator, n_moves: int = 80) -> list[tuple[int, int] | None]:
    """A random legal game (captures happen), played on sgfmill's board."""
    from sgfmill import boards

    board = boards.Board(19)
    moves, colour = [], "b"
    for _ in range(n_moves):
        empty = [(r, c) for r in range(19) for c in range(19) if board.get(r, c) is None]
        r, c = empty[rng.integers(len(empty))]
        board.play(r, c, colour)
        moves.append((r, c))
        colour = "w" if colour == "b" else "b"
    return moves


def row_game(rng: np.random.Generator, n_moves: int = 30) -> list[tuple[int, int]]:
    """Every move is the point right of the previous one (wrapping to the next row up): learnable from the
    "turns since" planes by a small CNN."""
    start = int(rng.integers(0, 15 * 19))
    return [divmod(start + t, 19) for t in range(n_moves)]


def write_archive(path, games: list[bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for i, g in enumerate(games):
            info = tarfile.TarInfo(f"games/{i:04d}.sgf")
            info.size = len(g)
            tar.addfile(info, io.BytesIO(g))


def write_kgs(data_dir, n_games: int = 8, seed: int = 1) -> None:
    """<data_dir>/go-sgf/kgs/small.tar.gz with random legal 19x19 games of 40 moves."""
    rng = np.random.default_rng(seed)
    write_archive(data_dir / "go-sgf" / "kgs" / "small.tar.gz", [sgf_game(random_game(rng, 40)) for _ in range(n_games)])


WRITERS = {
    "mnist": lambda d: write_idx_set(d / "mnist"),
    "fashion_mnist": lambda d: write_idx_set(d / "fashion-mnist"),
    "cifar10": lambda d: write_cifar(d),
    "go_policy": lambda d: write_kgs(d),
}
