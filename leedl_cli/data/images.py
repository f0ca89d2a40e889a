"""Image classification sets held as tensors in memory: digits (scikit-learn), MNIST and Fashion-MNIST (IDX
files), CIFAR-10 (the python pickle batches).

Each data module says what it provides through `provides()`: an `ImageSpec` (the class count, channels and image
size a model is built for, and the interfaces an image task may read: the training images, the transformed test
sets, the test set for pictures). Options shared by all of them:

- `train_size` / `train_fraction`: a fixed random, nested subset of the training images (data-size experiments);
- `augment`: data augmentation applied on the fly to each training batch (see `leedl_cli.data.augment`); runs
  without it use the plain in-memory loader, untouched;
- `test_rotations` / `test_scales`: extra *transformed test sets*, the same test images rotated by +-theta
  (alternately + and -) or scaled by s, on which the task reports accuracy (`test_rot30/acc`, `test_scale0.7/acc`):
  a CNN is not invariant to rotation and scaling (chapter 2).
"""
from __future__ import annotations

import gzip
import logging
import pickle
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Callable

import numpy as np
import pytorch_lightning as pl
import torch

from leedl_cli.contract import AtLeastOne, NonNegative, OpenProbability, offered
from leedl_cli.data.augment import AugmentedLoader, parse_augment, transform_images
from leedl_cli.data.memory import InMemoryLoader
from leedl_cli.errors import CorruptDataError, LeedlError
from leedl_cli.paths import data_path, downloads_allowed, require_files

log = logging.getLogger(__name__)

SPLIT_SEED = 0  # fixed: the split never depends on the run's seed


@dataclass(frozen=True)
class ImageSpec:
    """What an image data module provides: square images of `in_channels` x `image_size` x `image_size` in
    `num_classes` classes, and (offered: a task may leave them unused) the interfaces of an image task."""

    num_classes: int
    in_channels: int
    image_size: int
    train_images: Callable[[], torch.Tensor] = offered()      # the training images [N, C, H, W]
    test_images: Callable[[], tuple] = offered()              # (images, labels) of the test set
    transformed_test_sets: Callable[..., dict] = offered()    # (limit=None) -> {name: (images, labels)}: rotated / scaled
    eval_batch_size: int = offered()                          # images per batch when evaluating
    background: float = offered()                             # an empty pixel's value after normalisation


class InMemoryImageDataModule(pl.LightningDataModule):
    """Base: subclasses fill self.{train,val,test} = (images float [N,C,H,W], labels long [N])."""

    num_classes = 10
    allows_flip = False            # horizontal flip keeps the label (CIFAR-10 yes; digits, clothes' text: no)
    background = 0.0               # the value of an empty pixel after normalisation (what transforms fill in)

    def __init__(self, batch_size: Annotated[int, AtLeastOne] = 64, eval_batch_size: Annotated[int, AtLeastOne] = 1000,
                 seed: int = 0, train_fraction: Annotated[float, OpenProbability] = 1.0,
                 train_size: Annotated[int, AtLeastOne] | None = None, augment: str | list[str] | None = None,
                 test_rotations: list[float] | None = None, test_scales: list[float] | None = None) -> None:
        super().__init__()
        self.batch_size, self.eval_batch_size, self.seed = batch_size, eval_batch_size, seed
        self.train_fraction, self.train_size = train_fraction, train_size
        self.augment = parse_augment(augment, allows_flip=self.allows_flip)
        self.test_rotations = [float(a) for a in (test_rotations or [])]
        self.test_scales = [float(s) for s in (test_scales or [])]
        self.train = self.val = self.test = None

    @classmethod
    def config_problems(cls, options: dict) -> list[str]:
        """The augmentation spec parses for this data set; every test scale is > 0."""
        problems = []
        try:
            parse_augment(options.get("augment"), allows_flip=cls.allows_flip)
        except LeedlError as err:
            problems.append(str(err).removeprefix("task.data."))
        scales = options.get("test_scales") or []
        if any(not isinstance(s, (int, float)) or s <= 0 for s in scales):
            problems.append(f"test_scales={list(scales)}: expected scales > 0 (1.0 = unchanged)")
        return problems

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

    def provides(self) -> ImageSpec:
        self.setup()
        _, c, h, w = self.train[0].shape
        if h != w:
            raise LeedlError(f"{type(self).__name__}: images of {h}x{w} pixels; the models take square images")
        return ImageSpec(num_classes=self.num_classes, in_channels=c, image_size=h,
                         train_images=self.train_images, test_images=self.test_images,
                         transformed_test_sets=self.transformed_test_sets, eval_batch_size=self.eval_batch_size,
                         background=float(self.background))

    # the sets are loaded by then: provides() hands these out after setup()
    def train_images(self) -> torch.Tensor:
        return self.train[0]

    def test_images(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.test

    def _dist(self) -> dict:
        trainer = getattr(self, "trainer", None)
        return {} if trainer is None else {"rank": trainer.global_rank, "world_size": trainer.world_size}

    def train_dataloader(self):
        if self.augment:
            loader = AugmentedLoader(*self.train, augment=self.augment, background=self.background,
                                     batch_size=self.batch_size, shuffle=True, seed=self.seed, **self._dist())
        else:
            loader = InMemoryLoader(*self.train, batch_size=self.batch_size, shuffle=True, seed=self.seed,
                                    **self._dist())
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

    def transformed_test_sets(self, limit: int | None = None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """{name: (images, labels)}: the test set (its first `limit` images) rotated by +-theta (sign alternating by
        image) / scaled by s."""
        self.setup()
        x, y = (t[:limit] for t in self.test) if limit else self.test
        sets = {}
        sign = torch.where(torch.arange(len(x)) % 2 == 0, 1.0, -1.0)
        for a in self.test_rotations:
            sets[f"test_rot{a:g}"] = (transform_images(x, angle_deg=sign * a, background=self.background), y)
        for s in self.test_scales:
            sets[f"test_scale{s:g}"] = (transform_images(x, scale=torch.full((len(x),), s),
                                                         background=self.background), y)
        return sets


def _split(x: torch.Tensor, y: torch.Tensor, fractions: tuple[float, float]):
    """Deterministic shuffled split into (train, val, test) with val/test fractions."""
    n = len(x)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(SPLIT_SEED))
    n_val, n_test = int(n * fractions[0]), int(n * fractions[1])
    parts = order[n_val + n_test:], order[:n_val], order[n_val:n_val + n_test]
    return tuple((x[p], y[p]) for p in parts)


class DigitsDataModule(InMemoryImageDataModule):
    """scikit-learn's bundled 8x8 digits (1,797 images, 10 classes): 70% train / 10% val / 20% test, fixed.

    `drop_blank_pixels=true`: only the pixels that are not the same in every training image, as a [K, 1, 1] "image"
    (K channels of one pixel: a network that sees no blank pixels, for the minimum-ratio experiment);
    `blank_pixels` lists the dropped ones.
    """

    def __init__(self, drop_blank_pixels: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.drop_blank_pixels = drop_blank_pixels
        self.blank_pixels: list[int] = []

    background = -1.0   # (0 - 0.5) / 0.5

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
            self.train, self.val, self.test = ((xs.flatten(1)[:, keep].reshape(len(xs), -1, 1, 1), ys)
                                               for xs, ys in (self.train, self.val, self.test))


# ---- IDX files (MNIST, Fashion-MNIST) ---------------------------------------------------------------------------
MNIST_FILES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
IDX_TYPES = {0x08: np.uint8}   # the only element type these data sets use (unsigned bytes)


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (gzip or plain), the format of the original MNIST files, checking its header.

    The header is: two zero bytes, the element type (0x08 = unsigned byte), the number of dimensions, then each
    dimension as a big-endian 32-bit integer. The data after it must hold exactly prod(dims) elements.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (EOFError, OSError, zlib.error) as err:
        raise CorruptDataError(f"{path} is truncated or corrupt ({type(err).__name__}: {err}); "
                               f"download it again") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_TYPES:
        raise CorruptDataError(f"{path} is not an IDX file of unsigned bytes (header {data[:4].hex() or 'empty'}, "
                               f"expected 000008nn); download it again")
    ndim = data[3]
    offset = 4 + 4 * ndim
    if ndim == 0 or len(data) < offset:
        raise CorruptDataError(f"{path}: IDX header truncated ({len(data)} bytes, {ndim} dimensions)")
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    expected = offset + int(np.prod(dims))
    if len(data) != expected:
        raise CorruptDataError(f"{path} is truncated or corrupt: its header says {' x '.join(map(str, dims))} "
                               f"({expected:,} bytes), the file holds {len(data):,} bytes; download it again")
    return np.frombuffer(data, dtype=IDX_TYPES[data[2]], offset=offset).reshape(dims)


class IDXDataModule(InMemoryImageDataModule):
    """A data set in the four IDX files of MNIST's layout, in `<root>/<folder>` (torchvision downloads them when
    allowed). The last `val_size` training images are the validation set; the official test images the test set.
    """

    folder_name = "mnist"
    title = "MNIST"
    mean, std = MNIST_MEAN, MNIST_STD
    torchvision_class = "MNIST"
    how_to_get = ("download the four IDX .gz files from the MNIST page (torchvision.datasets.MNIST does this "
                  "with download=True on a machine with internet)")

    def __init__(self, root: str | None = None, val_size: Annotated[int, NonNegative] = 5000, download: bool = True,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.folder = data_path(root, self.folder_name)
        self.val_size, self.download = int(val_size), download

    @property
    def background(self) -> float:
        return -self.mean / self.std

    def prepare_data(self) -> None:
        if all((self.folder / f).exists() for f in MNIST_FILES):
            return
        if self.download and downloads_allowed():
            try:
                import torchvision.datasets

                cls = getattr(torchvision.datasets, self.torchvision_class)
                cls(str(self.folder.parent / "_torchvision"), download=True)
                raw = self.folder.parent / "_torchvision" / self.torchvision_class / "raw"
                self.folder.mkdir(parents=True, exist_ok=True)
                for f in MNIST_FILES:
                    (raw / f).replace(self.folder / f)
            except Exception as err:  # network errors of every kind
                log.warning("%s download failed: %s", self.title, err)
        require_files(self.folder, MNIST_FILES, self.title, self.how_to_get)

    def load(self) -> None:
        self.prepare_data()
        f = self.folder
        arrays = [read_idx(f / name) for name in MNIST_FILES]
        for (xs, ys), split in ((arrays[:2], "training"), (arrays[2:], "test")):
            if xs.ndim != 3 or ys.ndim != 1 or len(xs) != len(ys):
                raise CorruptDataError(f"{self.title} {split} files in {f} disagree: images {xs.shape}, labels "
                                       f"{ys.shape} (expected [N, H, W] images and N labels)")
            if ys.size and int(ys.max()) >= self.num_classes:
                raise CorruptDataError(f"{self.title} {split} labels in {f} go up to {int(ys.max())}, expected "
                                       f"0..{self.num_classes - 1}")
        if arrays[0].shape[1:] != arrays[2].shape[1:]:
            raise CorruptDataError(f"{self.title} training images are {arrays[0].shape[1:]}, test images "
                                   f"{arrays[2].shape[1:]} in {f}")
        n_train = len(arrays[0])
        if not 0 <= self.val_size < n_train:
            raise LeedlError(f"task.data.val_size={self.val_size}: must be >= 0 and below the {n_train:,} "
                             f"training images in {f}")

        def images(a):
            x = torch.from_numpy(a.copy()).float().div_(255).unsqueeze(1)
            return (x - self.mean) / self.std

        def labels(a):
            return torch.from_numpy(a.astype(np.int64))

        x, y = images(arrays[0]), labels(arrays[1])
        n = n_train - self.val_size
        self.train, self.val = (x[:n], y[:n]), (x[n:], y[n:])
        self.test = (images(arrays[2]), labels(arrays[3]))


class MNISTDataModule(IDXDataModule):
    """MNIST handwritten digits from the four original IDX files in `<root>/mnist`."""


FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]


class FashionMNISTDataModule(IDXDataModule):
    """Fashion-MNIST (Zalando: 28x28 grey clothes, 10 classes) from its four IDX files in `<root>/fashion-mnist`."""

    folder_name = "fashion-mnist"
    title = "Fashion-MNIST"
    mean, std = 0.2860, 0.3530
    torchvision_class = "FashionMNIST"
    how_to_get = ("download the four IDX .gz files from github.com/zalandoresearch/fashion-mnist (data/fashion/); "
                  "torchvision.datasets.FashionMNIST does this with download=True on a machine with internet")


# ---- CIFAR-10 (python version) ----------------------------------------------------------------------------------
CIFAR_DIR = "cifar-10-batches-py"
CIFAR_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
CIFAR_TEST = "test_batch"
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch (a pickle of {b'data': uint8 [N, 3072], b'labels': [N]}) -> images, labels."""
    try:
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="bytes")
        data = np.asarray(d[b"data"], dtype=np.uint8)
        labels = np.asarray(d[b"labels"], dtype=np.int64)
    except (OSError, EOFError, pickle.UnpicklingError, KeyError, TypeError, ValueError) as err:
        raise CorruptDataError(f"{path} is not a CIFAR-10 python batch ({type(err).__name__}: {err}); "
                               f"download cifar-10-python.tar.gz again") from None
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise CorruptDataError(f"{path}: data {data.shape} and {len(labels)} labels, expected [N, 3072] and N")
    return data.reshape(-1, 3, 32, 32), labels


class CIFAR10DataModule(InMemoryImageDataModule):
    """CIFAR-10 (32x32 RGB, 10 classes) from `<root>/cifar10/cifar-10-batches-py` (torchvision's download layout):
    five training batches (the last `val_size` images are the validation set) and the test batch."""

    allows_flip = True

    def __init__(self, root: str | None = None, val_size: Annotated[int, NonNegative] = 5000, download: bool = True,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.folder = data_path(root, "cifar10")
        self.val_size, self.download = int(val_size), download

    def prepare_data(self) -> None:
        files = [f"{CIFAR_DIR}/{b}" for b in CIFAR_TRAIN + [CIFAR_TEST]]
        if all((self.folder / f).exists() for f in files):
            return
        if self.download and downloads_allowed():
            try:
                from torchvision.datasets import CIFAR10
                CIFAR10(str(self.folder), download=True)
            except Exception as err:  # network errors of every kind
                log.warning("CIFAR-10 download failed: %s", err)
        require_files(self.folder, files, "CIFAR-10",
                      "download cifar-10-python.tar.gz from www.cs.toronto.edu/~kriz/cifar.html and unpack it "
                      "there (torchvision.datasets.CIFAR10(root, download=True) does this on a machine with internet)")

    def load(self) -> None:
        self.prepare_data()
        parts = [read_cifar_batch(self.folder / CIFAR_DIR / b) for b in CIFAR_TRAIN]
        mean = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(CIFAR_STD).view(1, 3, 1, 1)

        def images(a):
            return (torch.from_numpy(a).float().div_(255) - mean) / std

        x = images(np.concatenate([p[0] for p in parts]))
        y = torch.from_numpy(np.concatenate([p[1] for p in parts]))
        if not 0 <= self.val_size < len(x):
            raise LeedlError(f"task.data.val_size={self.val_size}: must be >= 0 and below the {len(x):,} "
                             f"CIFAR-10 training images in {self.folder}")
        n = len(x) - self.val_size
        self.train, self.val = (x[:n], y[:n]), (x[n:], y[n:])
        tx, ty = read_cifar_batch(self.folder / CIFAR_DIR / CIFAR_TEST)
        self.test = (images(tx), torch.from_numpy(ty))
