"""Small image classification sets held as tensors in memory: digits (scikit-learn), MNIST (IDX files).

Each data module reports the shapes a model needs through `model_kwargs()`.
"""
from __future__ import annotations

import gzip
import logging
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch

from leedl_cli.data.memory import InMemoryLoader
from leedl_cli.errors import DataNotFoundError
from leedl_cli.paths import data_path, downloads_allowed, require_files

log = logging.getLogger(__name__)

SPLIT_SEED = 0  # fixed: the split never depends on the run's seed


class InMemoryImageDataModule(pl.LightningDataModule):
    """Base: subclasses fill self.{train,val,test} = (images float [N,C,H,W], labels long [N])."""

    num_classes = 10

    def __init__(self, batch_size: int = 64, eval_batch_size: int = 1000, seed: int = 0,
                 train_fraction: float = 1.0, train_size: int | None = None, augment: str | None = None) -> None:
        super().__init__()
        self.batch_size, self.eval_batch_size, self.seed = batch_size, eval_batch_size, seed
        self.train_fraction, self.train_size = train_fraction, train_size
        self.augment = augment
        self.train = self.val = self.test = None

    def load(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.train is None:
            self.load()
            # for "performance vs data size" experiments: a fixed random subset (train_size images, or a fraction)
            n_all = len(self.train[0])
            n = min(n_all, int(self.train_size)) if self.train_size else max(1, int(n_all * self.train_fraction))
            if n < n_all:
                idx = torch.randperm(len(self.train[0]), generator=torch.Generator().manual_seed(SPLIT_SEED))[:n]
                self.train = tuple(t[idx] for t in self.train)

    def model_kwargs(self) -> dict:
        self.setup()
        _, c, h, w = self.train[0].shape
        return {"in_channels": c, "image_size": h, "input_dim": c * h * w, "num_classes": self.num_classes}

    def _dist(self) -> dict:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return {}
        return {"rank": trainer.global_rank, "world_size": trainer.world_size}

    def train_dataloader(self):
        loader = InMemoryLoader(*self.train, batch_size=self.batch_size, shuffle=True, seed=self.seed, **self._dist())
        if getattr(self, "_resume_loader", None):
            loader.load_state_dict(self._resume_loader)
            self._resume_loader = None
        self._train_loader = loader
        return loader

    # A run stopped mid-epoch (leedl_cli.signals) goes on with the batch after the last one it trained:
    # Lightning keeps this state in the checkpoint and hands it back before the training loader is made.
    def state_dict(self) -> dict:
        loader = getattr(self, "_train_loader", None)
        return {"train_loader": loader.state_dict()} if loader is not None else {}

    def load_state_dict(self, state: dict) -> None:
        self._resume_loader = state.get("train_loader")

    def val_dataloader(self):
        return InMemoryLoader(*self.val, batch_size=self.eval_batch_size, **self._dist())

    def test_dataloader(self):
        return InMemoryLoader(*self.test, batch_size=self.eval_batch_size, **self._dist())


def _split(x: torch.Tensor, y: torch.Tensor, fractions: tuple[float, float]):
    """Deterministic shuffled split into (train, val, test) with val/test fractions."""
    n = len(x)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(SPLIT_SEED))
    n_val, n_test = int(n * fractions[0]), int(n * fractions[1])
    parts = order[n_val + n_test:], order[:n_val], order[n_val:n_val + n_test]
    return tuple((x[p], y[p]) for p in parts)


class DigitsDataModule(InMemoryImageDataModule):
    """scikit-learn's bundled 8x8 digits (1,797 images, 10 classes): 70% train / 10% val / 20% test, fixed.

    `drop_blank_pixels=true`: only the pixels that are not the same in every training image, as a [1, 1, K] "image"
    (a network that sees no blank pixels, for the minimum-ratio experiment); `blank_pixels` lists the dropped ones.
    """

    def __init__(self, drop_blank_pixels: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.drop_blank_pixels = drop_blank_pixels
        self.blank_pixels: list[int] = []

    def load(self) -> None:
        from sklearn.datasets import load_digits

        d = load_digits()
        x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
        x = (x - 0.5) / 0.5
        y = torch.tensor(d.target, dtype=torch.long)
        self.train, self.val, self.test = _split(x, y, (0.1, 0.2))
        if self.drop_blank_pixels:
            flat = self.train[0].flatten(1)
            blank = (flat == flat[:1]).all(0)
            self.blank_pixels = blank.nonzero().flatten().tolist()
            keep = (~blank).nonzero().flatten()
            self.train, self.val, self.test = ((xs.flatten(1)[:, keep].reshape(len(xs), 1, 1, -1), ys)
                                               for xs, ys in (self.train, self.val, self.test))


MNIST_FILES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (gzip or plain), the format of the original MNIST files."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


class MNISTDataModule(InMemoryImageDataModule):
    """MNIST from the four original IDX files in `<root>/mnist` (torchvision downloads them when allowed).

    The last `val_size` training images are the validation set; the official 10,000 are the test set.
    """

    def __init__(self, root: str | None = None, val_size: int = 5000, download: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.folder = data_path(root, "mnist")
        self.val_size, self.download = val_size, download

    def prepare_data(self) -> None:
        if all((self.folder / f).exists() for f in MNIST_FILES):
            return
        if self.download and downloads_allowed():
            try:
                from torchvision.datasets import MNIST
                MNIST(str(self.folder.parent / "_torchvision"), download=True)
                raw = self.folder.parent / "_torchvision" / "MNIST" / "raw"
                self.folder.mkdir(parents=True, exist_ok=True)
                for f in MNIST_FILES:
                    (raw / f).replace(self.folder / f)
            except Exception as err:  # network errors of every kind
                log.warning("MNIST download failed: %s", err)
        require_files(self.folder, MNIST_FILES, "MNIST",
                      "download the four IDX .gz files from the MNIST page (torchvision.datasets.MNIST does this "
                      "with download=True on a machine with internet)")

    def load(self) -> None:
        self.prepare_data()
        f = self.folder
        def images(name):
            x = torch.from_numpy(read_idx(f / name).copy()).float().div_(255).unsqueeze(1)
            return (x - MNIST_MEAN) / MNIST_STD
        def labels(name):
            return torch.from_numpy(read_idx(f / name).astype(np.int64))
        x, y = images(MNIST_FILES[0]), labels(MNIST_FILES[1])
        if len(x) != 60000 or len(y) != 60000:
            raise DataNotFoundError(f"MNIST training files in {f} hold {len(x)} images, expected 60,000")
        n = len(x) - self.val_size
        self.train, self.val = (x[:n], y[:n]), (x[n:], y[n:])
        self.test = (images(MNIST_FILES[2]), labels(MNIST_FILES[3]))
