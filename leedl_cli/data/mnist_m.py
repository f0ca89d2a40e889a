"""Chapter 6 data: MNIST (source domain) and MNIST-M (target domain) for domain-adversarial training.

MNIST-M training images are *built* from MNIST train and the BSDS500 training photographs by the published
recipe (Ganin & Lempitsky 2015; the `create_mnistm.py` of the DANN re-implementations): binarise the digit,
take a random 28x28 patch of a random BSDS500 photograph, output |patch - digit| in 3 channels. The build is
seeded, cached under `paths.cache_dir("mnist-m")` keyed by the recipe, its seed and the inputs' checksums,
with the built array's own checksum recorded beside it, written atomically and rebuilt when missing or when
the checksum does not match. Testing is always on the real MNIST-M test split (9,001 32x32 PNGs in
`mnist_m_test.zip`), never on built images.

The real MNIST-M test PNGs are 32x32 with the digit at MNIST's scale: they are MNIST digits padded by 2 pixels
(measured: the mean test image correlates 0.996 with MNIST's mean image padded to 32, 0.966 with it resized
to 32). So sizes are matched by cropping or padding, never by resizing, the same way for both domains:
`image_size: 28` (default) crops the 2-pixel border off the test images; `image_size: 32` pads the MNIST digits
by 2 pixels (zeros) before anything else, and builds MNIST-M from the padded digits with 32x32 photograph
patches, as the test set was made. Then 3 channels (MNIST's grey repeated) and per-channel normalisation.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Literal

import numpy as np
import pytorch_lightning as pl
import torch

from leedl_cli.data.files import data_reader
from leedl_cli.data.images import read_idx
from leedl_cli.data.memory import InMemoryLoader
from leedl_cli.errors import DataNotFoundError, LeedlError
from leedl_cli.paths import cache_dir, data_path, require_files

log = logging.getLogger(__name__)

RECIPE = "mnist-m-v1: digit>0 -> 255, |bsds_patch - digit|, uniform image and offset"
MNIST_TRAIN = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]
MNIST_TEST = ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
MNIST_M_TEST_ZIP = "mnist_m_test.zip"
MNIST_M_TEST_LABELS = "mnist_m_test_labels.txt"
MODES = ("source_only", "dann", "target_only")


# ---- the MNIST-M recipe --------------------------------------------------------------------------------
def load_backgrounds(folder: Path) -> list[np.ndarray]:
    """The BSDS500 training photographs (uint8 HxWx3), in file-name order."""
    from PIL import Image

    files = sorted(folder.glob("*.jpg"))
    if not files:
        raise DataNotFoundError(
            f"BSDS500 not found: no *.jpg in {folder}.\nTo fix: put the 200 BSDS500 training photographs "
            f"(BSR/BSDS500/data/images/train/*.jpg of the Berkeley Segmentation Dataset) in {folder}, "
            f"or point leedl at a data folder that has bsds500/train: LEEDL_DATA_DIR=/path/to/data.")
    return [np.asarray(Image.open(f).convert("RGB")) for f in files]


def build_mnist_m(digits: np.ndarray, backgrounds: list[np.ndarray], seed: int = 0) -> np.ndarray:
    """MNIST-M images (uint8 [N, h, w, 3]) from MNIST digits (uint8 [N, h, w]): |random photo patch - binarised digit|."""
    rng = np.random.default_rng(seed)
    n, h, w = digits.shape
    binary = (digits > 0).astype(np.int16)[..., None] * 255
    which = rng.integers(0, len(backgrounds), size=n)
    out = np.empty((n, h, w, 3), dtype=np.uint8)
    for i in range(n):
        bg = backgrounds[which[i]]
        y = rng.integers(0, bg.shape[0] - h + 1)
        x = rng.integers(0, bg.shape[1] - w + 1)
        patch = bg[y:y + h, x:x + w].astype(np.int16)
        out[i] = np.abs(patch - binary[i]).astype(np.uint8)
    return out


def _sha256_files(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def _sha256_array(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).data).hexdigest()


def _save_npy_atomic(path: Path, array: np.ndarray) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _save_text_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def mnist_m_train(mnist_folder: Path, bsds_folder: Path, seed: int = 0, image_size: int = 28) -> tuple[np.ndarray, dict]:
    """The built MNIST-M training images (one per MNIST training digit, same order and labels; the digits
    padded to `image_size` first), from the cache when a build with the same recipe, size, seed and input
    checksums is there and intact; built and cached otherwise."""
    mnist_file = mnist_folder / MNIST_TRAIN[0]
    bsds_files = sorted(bsds_folder.glob("*.jpg"))
    inputs = {"mnist": _sha256_files([mnist_file]), "bsds500": _sha256_files(bsds_files)}
    what = {"recipe": RECIPE, "seed": seed, **inputs}
    if image_size != 28:
        what["image_size"] = image_size
    key = hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()
    folder = cache_dir("mnist-m")
    npy, meta_file = folder / f"train-{key[:16]}.npy", folder / f"train-{key[:16]}.json"
    if npy.is_file() and meta_file.is_file():
        meta = json.loads(meta_file.read_text())
        images = np.load(npy)
        if _sha256_array(images) == meta.get("sha256"):
            return images, meta
        log.warning("built MNIST-M in %s does not match its recorded checksum: building it again", npy)
    log.info("building MNIST-M training images from %s and %d BSDS500 photographs", mnist_file, len(bsds_files))
    images = build_mnist_m(fit_size(read_idx(mnist_file), image_size), load_backgrounds(bsds_folder), seed)
    meta = {"recipe": RECIPE, "seed": seed, "image_size": image_size, "inputs_sha256": inputs, "shape": list(images.shape),
            "sha256": _sha256_array(images), "file": str(npy)}
    _save_npy_atomic(npy, images)
    _save_text_atomic(meta_file, json.dumps(meta, indent=1))
    return images, meta


@data_reader('MNIST-M test', "the DANN paper's project page (Ganin & Lempitsky 2015)")
def read_mnist_m_test(zip_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The real MNIST-M test split: (uint8 [N, 32, 32, 3], int64 [N]) in the labels file's order."""
    from PIL import Image

    with zipfile.ZipFile(zip_path) as z:
        by_name = {Path(n).name: n for n in z.namelist() if not n.endswith("/")}
        if MNIST_M_TEST_LABELS not in by_name:
            raise DataNotFoundError(f"{zip_path} holds no {MNIST_M_TEST_LABELS}: not the MNIST-M test archive")
        images, labels = [], []
        for line in z.read(by_name[MNIST_M_TEST_LABELS]).decode().split("\n"):
            if not line.strip():
                continue
            name, label = line.split()
            if name not in by_name:
                raise DataNotFoundError(f"{zip_path}: {MNIST_M_TEST_LABELS} names {name}, which is not in the archive")
            images.append(np.asarray(Image.open(io.BytesIO(z.read(by_name[name]))).convert("RGB")))
            labels.append(int(label))
    return np.stack(images), np.asarray(labels, dtype=np.int64)


# ---- tensors -------------------------------------------------------------------------------------------
def fit_size(images: np.ndarray, image_size: int) -> np.ndarray:
    """uint8 [N,H,W(,3)] -> [N,S,S(,3)] by a centred crop (larger) or zero padding (smaller), never by resizing:
    the digits of both domains keep MNIST's scale (the 32x32 MNIST-M test images are padded 28x28 digits)."""
    h, w = images.shape[1:3]
    if (h, w) == (image_size, image_size):
        return images
    if (h - image_size) % 2 or (w - image_size) % 2:
        raise LeedlError(f"task.data.image_size={image_size}: images of {h}x{w} pixels cannot be centred at that size "
                         f"(crop or pad by an even number of pixels); use 28 or 32")
    dy, dx = (h - image_size) // 2, (w - image_size) // 2
    if dy >= 0 and dx >= 0:
        return images[:, dy:dy + image_size, dx:dx + image_size]
    pad = [(0, 0), (-dy, -dy), (-dx, -dx)] + [(0, 0)] * (images.ndim - 3)
    return np.pad(images, pad)


def to_tensor(images: np.ndarray, image_size: int) -> torch.Tensor:
    """uint8 [N,H,W] (grey) or [N,H,W,3] -> float [N,3,S,S] in [0,1], cropped or padded to S (`fit_size`)."""
    a = fit_size(images, image_size)
    a = a if a.flags.c_contiguous and a.flags.writeable else np.array(a, order="C")
    x = torch.from_numpy(a).float().div_(255)
    x = x.unsqueeze(1).expand(-1, 3, -1, -1) if x.dim() == 3 else x.permute(0, 3, 1, 2)
    return x.contiguous()


def channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x.mean(dim=(0, 2, 3)).view(1, 3, 1, 1), x.std(dim=(0, 2, 3)).view(1, 3, 1, 1)


class PairedLoader:
    """Training batches that hold both domains: (x_source, y_source, x_target), a batch of each per step.

    An epoch is one pass over the source; the target is drawn by its own shuffle (cycled when shorter).
    """

    def __init__(self, source: InMemoryLoader, target: InMemoryLoader) -> None:
        self.source, self.target = source, target
        self.sampler = self   # Lightning calls sampler.set_epoch(epoch)
        self.batch_sampler = None

    def set_epoch(self, epoch: int) -> None:
        self.source.sampler.set_epoch(epoch)
        self.target.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.source)

    def __iter__(self):
        target = iter(self.target)
        for xs, ys in self.source:
            try:
                (xt,) = next(target)
            except StopIteration:
                self.target.sampler.set_epoch(self.target.sampler.epoch + 1000)
                target = iter(self.target)
                (xt,) = next(target)
            yield xs, ys, xt


class DomainAdaptationDataModule(pl.LightningDataModule):
    """MNIST -> MNIST-M for `task=dann`.

    mode: `source_only` (train on MNIST, labelled), `dann` (MNIST labelled + MNIST-M training images without
    labels, a batch of each per step), `target_only` (train on the built MNIST-M images with their labels).
    Validation: the last `val_size` training images of the labelled training domain. Test, in every mode: the
    MNIST test set (test/source_acc) and the real MNIST-M test set (test/target_acc).
    normalize: `domain` (each domain by the per-channel mean/std of its own training images; for the target
    these are unlabelled images, which DANN sees anyway) or `source` (both by MNIST's).
    """

    num_classes = 10

    def __init__(self, root: str | None = None, mode: Literal["source_only", "dann", "target_only"] = "dann", batch_size: int = 64,
                 eval_batch_size: int = 1000, seed: int = 0, image_size: int = 28, normalize: Literal["domain", "source"] = "domain",
                 val_size: int = 5000, train_size: int | None = None, test_size: int | None = None,
                 build_seed: int = 0) -> None:
        super().__init__()
        if mode not in MODES:
            raise LeedlError(f"task.mode={mode!r} is not a DANN mode; accepted: {', '.join(MODES)}")
        if normalize not in ("domain", "source"):
            raise LeedlError(f"task.data.normalize={normalize!r} is not accepted; accepted: domain, source")
        base = Path(root).expanduser() if root else None
        self.mnist_dir = data_path(base, "mnist")
        self.mnist_m_dir = data_path(base, "mnist-m")
        self.bsds_dir = data_path(base, "bsds500") / "train"
        self.mode, self.batch_size, self.eval_batch_size, self.seed = mode, batch_size, eval_batch_size, seed
        self.image_size, self.normalize, self.val_size = image_size, normalize, val_size
        self.train_size, self.test_size, self.build_seed = train_size, test_size, build_seed
        self.loaded = False
        self.built_meta: dict = {}

    def _require(self) -> None:
        require_files(self.mnist_dir, MNIST_TRAIN + MNIST_TEST, "MNIST",
                      "download the four IDX .gz files (torchvision.datasets.MNIST(download=True) does)")
        require_files(self.mnist_m_dir, [MNIST_M_TEST_ZIP], "MNIST-M test",
                      "get mnist_m_test.zip (the 9,001 MNIST-M test PNGs + mnist_m_test_labels.txt) from the "
                      "DANN paper's project page (Ganin & Lempitsky 2015)")
        if not self.bsds_dir.is_dir() or not any(self.bsds_dir.glob("*.jpg")):
            load_backgrounds(self.bsds_dir)   # raises the DataNotFoundError that says how to get it

    def setup(self, stage: str | None = None) -> None:
        if self.loaded:
            return
        self._require()
        size = self.image_size
        digits = read_idx(self.mnist_dir / MNIST_TRAIN[0])
        labels = torch.from_numpy(read_idx(self.mnist_dir / MNIST_TRAIN[1]).astype(np.int64))
        built, self.built_meta = mnist_m_train(self.mnist_dir, self.bsds_dir, self.build_seed, size)
        n_val = min(self.val_size, len(digits) // 5)
        n_train = len(digits) - n_val
        keep = torch.arange(n_train)
        if self.train_size and self.train_size < n_train:   # a fixed subset, the same for both domains
            keep = torch.randperm(n_train, generator=torch.Generator().manual_seed(0))[: self.train_size]
        src_all, tgt_all = to_tensor(digits, size), to_tensor(built, size)
        src_stats = channel_stats(src_all[keep])
        tgt_stats = channel_stats(tgt_all[keep]) if self.normalize == "domain" else src_stats

        def norm(x, stats):
            return (x - stats[0]) / stats[1]

        test_digits, test_labels = read_idx(self.mnist_dir / MNIST_TEST[0]), read_idx(self.mnist_dir / MNIST_TEST[1])
        mm_images, mm_labels = read_mnist_m_test(self.mnist_m_dir / MNIST_M_TEST_ZIP)
        if self.test_size:
            test_digits, test_labels = test_digits[: self.test_size], test_labels[: self.test_size]
            mm_images, mm_labels = mm_images[: self.test_size], mm_labels[: self.test_size]
        self.test_source = (norm(to_tensor(test_digits, size), src_stats), torch.from_numpy(test_labels.astype(np.int64)))
        self.test_target = (norm(to_tensor(mm_images, size), tgt_stats), torch.from_numpy(mm_labels))
        val = slice(n_train, len(digits))
        if self.mode == "target_only":   # labelled target training images, no source
            self.train = (norm(tgt_all[keep], tgt_stats), labels[keep])
            self.val = (norm(tgt_all[val], tgt_stats), labels[val])
            self.target = None
        else:
            self.train = (norm(src_all[keep], src_stats), labels[keep])
            self.val = (norm(src_all[val], src_stats), labels[val])
            # target images without labels (only `dann` trains on them)
            self.target = (norm(tgt_all[keep], tgt_stats),) if self.mode == "dann" else None
        self.loaded = True

    def model_kwargs(self) -> dict:
        self.setup()
        _, c, h, w = self.train[0].shape
        return {"in_channels": c, "image_size": h, "input_dim": c * h * w, "num_classes": self.num_classes}

    def train_dataloader(self):
        source = InMemoryLoader(*self.train, batch_size=self.batch_size, shuffle=True, seed=self.seed, drop_last=True)
        if self.target is None:
            return source
        target = InMemoryLoader(*self.target, batch_size=self.batch_size, shuffle=True, seed=self.seed + 7919,
                                drop_last=True)
        return PairedLoader(source, target)

    def val_dataloader(self):
        return InMemoryLoader(*self.val, batch_size=self.eval_batch_size)

    def test_dataloader(self):
        """[MNIST test (source), MNIST-M test (target)]: dataloader_idx 0 and 1 of the task's test_step."""
        return [InMemoryLoader(*self.test_source, batch_size=self.eval_batch_size),
                InMemoryLoader(*self.test_target, batch_size=self.eval_batch_size)]
