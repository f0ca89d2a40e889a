"""The MNIST-M images of chapter 6: the training images built from MNIST and BSDS500, the real test split read.

MNIST-M training images are *built* from MNIST train and the BSDS500 training photographs by the published
recipe (Ganin & Lempitsky 2015; the `create_mnistm.py` of the DANN re-implementations): binarise the digit,
take a random patch of a random BSDS500 photograph, output |patch - digit| in 3 channels. The build is seeded,
cached under `paths.cache_dir("mnist-m")` keyed by the recipe, its seed, the size and the inputs' checksums,
with the built array's own checksum recorded beside it, written atomically and rebuilt when missing or when the
checksum does not match. The real MNIST-M test split (9,001 32x32 PNGs in `mnist_m_test.zip`) is read as it is.

The real MNIST-M test PNGs are 32x32 with the digit at MNIST's scale: they are MNIST digits padded by 2 pixels
(measured: the mean test image correlates 0.996 with MNIST's mean image padded to 32, 0.966 with it resized
to 32). So sizes are matched by cropping or padding (`fit_size`), never by resizing.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import zipfile
from pathlib import Path

import numpy as np

from leedl_cli.atomic import save_npy_atomic, write_text_atomic
from leedl_cli.data.files import data_reader
from leedl_cli.data.images import read_idx
from leedl_cli.errors import DataNotFoundError, LeedlError
from leedl_cli.paths import cache_dir

log = logging.getLogger(__name__)

RECIPE = "mnist-m-v1: digit>0 -> 255, |bsds_patch - digit|, uniform image and offset"
MNIST_TRAIN = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]
MNIST_TEST = ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
MNIST_M_TEST_ZIP = "mnist_m_test.zip"
MNIST_M_TEST_LABELS = "mnist_m_test_labels.txt"


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
    save_npy_atomic(npy, images)
    write_text_atomic(meta_file, json.dumps(meta, indent=1))
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
