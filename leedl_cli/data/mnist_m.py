"""Chapter 6 data: MNIST (source domain) and MNIST-M (target domain) for domain-adversarial training.

The MNIST-M training images are built from MNIST and BSDS500 (`leedl_cli.data.mnist_m_build`); testing is
always on the real MNIST-M test split, never on built images. Sizes are matched by cropping or padding, the same
way for both domains: `image_size: 28` (default) crops the 2-pixel border off the 32x32 test images;
`image_size: 32` pads the MNIST digits by 2 pixels (zeros) before anything else, and builds MNIST-M from the
padded digits with 32x32 photograph patches, as the test set was made. Then 3 channels (MNIST's grey repeated)
and per-channel normalisation.

The data module is an in-memory image data module (`leedl_cli.data.images`): under DDP every loader takes its
rank's share, and a run stopped mid-epoch goes on with the batch after the last one it trained, for the paired
source/target batches of `mode=dann` too.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import numpy as np
import torch

from leedl_cli.contract import AtLeastOne, NonNegative, offered
from leedl_cli.data.domain_augment import AugmentedLoader, synthesize_domains
from leedl_cli.data.images import SPLIT_SEED, InMemoryImageDataModule, read_idx
from leedl_cli.data.memory import InMemoryLoader
from leedl_cli.data.mnist_m_build import (
    MNIST_M_TEST_ZIP,
    MNIST_TEST,
    MNIST_TRAIN,
    fit_size,
    load_backgrounds,
    mnist_m_train,
    read_mnist_m_test,
)
from leedl_cli.errors import LeedlError
from leedl_cli.paths import data_path, require_files

Mode = Literal["source_only", "dann", "target_only", "finetune", "generalization", "ttt"]
MODES = get_args(Mode)
"""source_only: train on labelled MNIST; dann: labelled MNIST + unlabelled MNIST-M, a batch of each per step;
target_only: train on the built MNIST-M images with their labels; finetune: MNIST, then `target_labels` labelled
built MNIST-M images (section 6.2); generalization: MNIST only, through random colours and textures
(leedl_cli.data.domain_augment; section 6.3); ttt: MNIST, adapted to each test batch at test time (section 6.2)."""
SOURCE_TRAINED = ("source_only", "finetune", "generalization", "ttt")   # the modes whose training batches are MNIST's
Normalize = Literal["domain", "source"]
TEST_DOMAINS = ("source", "target")   # the test loaders, in order: MNIST test, MNIST-M test
TARGET_SEED_OFFSET = 7919             # the target images' shuffle: its own seed, derived from the run's
LABELS_SEED_OFFSET = 104_729          # the few labelled target images (mode=finetune): drawn with the run's seed + this
AUGMENT_STATS_SEED = 12_345           # mode=generalization: the augmented sample whose mean/std normalise every image


def balanced_subset(labels: torch.Tensor, n: int, seed: int, num_classes: int = 10) -> torch.Tensor:
    """Indices of `n` images drawn by `seed`: n // num_classes of each class (with n >= num_classes), the remaining
    n % num_classes from distinct random classes; n < num_classes: n random images. Sorted."""
    gen = torch.Generator().manual_seed(seed)
    if n < num_classes:
        return torch.randperm(len(labels), generator=gen)[:n].sort().values
    extra = set(torch.randperm(num_classes, generator=gen)[: n % num_classes].tolist())
    picked = []
    for k in range(num_classes):
        pool = torch.nonzero(labels == k).flatten()
        want = n // num_classes + (k in extra)
        if len(pool) < want:
            raise LeedlError(f"task.data.target_labels={n}: class {k} has only {len(pool)} training images")
        picked.append(pool[torch.randperm(len(pool), generator=gen)[:want]])
    return torch.cat(picked).sort().values


@dataclass(frozen=True)
class DomainAdaptationSpec:
    """What the MNIST -> MNIST-M data provides: images of `in_channels` x `image_size` x `image_size` in
    `num_classes` classes; `test_domains`, the domain of each test loader in order (the task names its test
    metrics after them); `data_record`, what the run trained on (image counts, the built MNIST-M's seed and
    checksum), for results.json."""

    num_classes: int
    in_channels: int
    image_size: int
    test_domains: tuple[str, ...]
    data_record: dict[str, Any]
    labelled_target: tuple[torch.Tensor, torch.Tensor] | None = offered(default=None)
    """mode=finetune: the `target_labels` labelled MNIST-M training images (x, y) the task fine-tunes on."""
    target_test: tuple[torch.Tensor, torch.Tensor] | None = offered(default=None)
    """The real MNIST-M test images (x, y), as the test loader gives them: the fine-tuning curve's."""


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

    An epoch is one pass over the source; the target is drawn by its own shuffle, a new one (epoch + 1000) each
    time it runs out. Both loaders are this rank's share under DDP. The place in an epoch is the source's (its
    `state_dict`); the target's place follows from it, so a resumed epoch pairs the same batches.
    """

    CYCLE = 1000   # the target's shuffle after k run-outs in epoch e: that of epoch e + k * CYCLE

    def __init__(self, source: InMemoryLoader, target: InMemoryLoader) -> None:
        self.source, self.target = source, target
        self.sampler = self   # Lightning calls sampler.set_epoch(epoch)
        self.batch_sampler = None

    def set_epoch(self, epoch: int) -> None:
        self.source.sampler.set_epoch(epoch)
        self.target.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.source)

    @property
    def batches_trained(self) -> int | None:   # set by a stop (leedl_cli.signals): the source counts the pairs
        return self.source.batches_trained

    @batches_trained.setter
    def batches_trained(self, n: int | None) -> None:
        self.source.batches_trained = n

    def state_dict(self) -> dict:
        return self.source.state_dict()

    def load_state_dict(self, state: dict) -> None:
        epoch, done = int(state["epoch"]), int(state["batches"])
        self.source.load_state_dict(state)
        cycles, at = divmod(done, len(self.target))
        self.target.load_state_dict({"epoch": epoch + cycles * self.CYCLE, "batches": at})

    def __iter__(self):
        target = iter(self.target)
        for xs, ys in self.source:
            try:
                (xt,) = next(target)
            except StopIteration:
                self.target.sampler.set_epoch(self.target.sampler.epoch + self.CYCLE)
                target = iter(self.target)
                (xt,) = next(target)
            yield xs, ys, xt


class DomainAdaptationDataModule(InMemoryImageDataModule):
    """MNIST -> MNIST-M for `task=dann`.

    mode (`Mode`): what the training batches hold. Validation: the last `val_size` training images of the
    labelled training domain. Test, in every mode: the MNIST test set and the real MNIST-M test set (the two
    test loaders, `TEST_DOMAINS`). normalize: `domain` (each domain by the per-channel mean/std of its own
    training images; for the target these are unlabelled images, which DANN sees anyway) or `source` (both by
    MNIST's). `train_size`: a fixed random subset of the training images, the same for both domains.
    mode=finetune: `target_labels` labelled built MNIST-M training images (`balanced_subset` by the run's seed)
    given to the task with the MNIST-M test images (`DomainAdaptationSpec`). mode=generalization: no MNIST-M image
    or statistic is used in training: the MNIST images go through `synthesize_domains` batch by batch (validation:
    one fixed draw), and every image, the MNIST-M test's too, is normalised by the mean/std of augmented MNIST.
    """

    num_classes = 10

    def __init__(self, root: str | None = None, mode: Mode = "dann", batch_size: Annotated[int, AtLeastOne] = 64,
                 eval_batch_size: Annotated[int, AtLeastOne] = 1000, seed: int = 0,
                 image_size: Annotated[int, AtLeastOne] = 28, normalize: Normalize = "domain",
                 val_size: Annotated[int, NonNegative] = 5000, train_size: Annotated[int, AtLeastOne] | None = None,
                 test_size: Annotated[int, AtLeastOne] | None = None, build_seed: int = 0,
                 target_labels: Annotated[int, AtLeastOne] | None = None) -> None:
        super().__init__(batch_size=batch_size, eval_batch_size=eval_batch_size, seed=seed, train_size=train_size)
        base = Path(root).expanduser() if root else None
        self.mnist_dir = data_path(base, "mnist")
        self.mnist_m_dir = data_path(base, "mnist-m")
        self.bsds_dir = data_path(base, "bsds500") / "train"
        self.mode, self.image_size, self.normalize, self.val_size = mode, image_size, normalize, val_size
        self.test_size, self.build_seed, self.target_labels = test_size, build_seed, target_labels
        self.labelled_target: tuple[torch.Tensor, torch.Tensor] | None = None
        self.augment_stats: tuple[torch.Tensor, torch.Tensor] | None = None
        self.target: tuple[torch.Tensor] | None = None
        self.test_source = self.test_target = None
        self.built_meta: dict = {}

    @classmethod
    def config_problems(cls, options: dict) -> list[str]:
        """The image size differs from the 28x28 digits and the 32x32 test images by whole border pixels."""
        problems = []
        size = options.get("image_size")
        if isinstance(size, int) and size % 2:
            problems.append(f"image_size={size}: expected an even size (28: the digits as they are, the test images "
                            f"cropped; 32: the digits padded); images are cropped or padded, never resized")
        mode, labels = options.get("mode"), options.get("target_labels")
        if mode == "finetune" and labels is None:
            problems.append("target_labels=None: expected a number of labelled MNIST-M training images with "
                            "mode=finetune (10, 100, 1000, ...)")
        if mode != "finetune" and labels is not None:
            problems.append(f"target_labels={labels}: expected null with mode={mode} (only mode=finetune trains "
                            f"on a few labelled target images)")
        return problems

    def _require(self) -> None:
        require_files(self.mnist_dir, MNIST_TRAIN + MNIST_TEST, "MNIST",
                      "download the four IDX .gz files (torchvision.datasets.MNIST(download=True) does)")
        require_files(self.mnist_m_dir, [MNIST_M_TEST_ZIP], "MNIST-M test",
                      "get mnist_m_test.zip (the 9,001 MNIST-M test PNGs + mnist_m_test_labels.txt) from the "
                      "DANN paper's project page (Ganin & Lempitsky 2015)")
        if not self.bsds_dir.is_dir() or not any(self.bsds_dir.glob("*.jpg")):
            load_backgrounds(self.bsds_dir)   # raises the DataNotFoundError that says how to get it

    def load(self) -> None:
        self._require()
        size = self.image_size
        digits = read_idx(self.mnist_dir / MNIST_TRAIN[0])
        labels = torch.from_numpy(read_idx(self.mnist_dir / MNIST_TRAIN[1]).astype(np.int64))
        built, self.built_meta = mnist_m_train(self.mnist_dir, self.bsds_dir, self.build_seed, size)
        n_val = min(self.val_size, len(digits) // 5)
        n_train = len(digits) - n_val
        keep = torch.arange(n_train)
        if self.train_size and self.train_size < n_train:   # a fixed subset, the same for both domains
            keep = torch.randperm(n_train, generator=torch.Generator().manual_seed(SPLIT_SEED))[: self.train_size]
        src_all, tgt_all = to_tensor(digits, size), to_tensor(built, size)
        src_stats = channel_stats(src_all[keep])
        tgt_stats = channel_stats(tgt_all[keep]) if self.normalize == "domain" else src_stats
        if self.mode == "generalization":   # nothing of MNIST-M: the statistics of augmented MNIST for every image
            sample = src_all[keep][:5000]
            src_stats = tgt_stats = self.augment_stats = channel_stats(
                synthesize_domains(sample, torch.Generator().manual_seed(AUGMENT_STATS_SEED)))

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
        elif self.mode == "generalization":   # raw [0, 1] digits, augmented batch by batch; validation: one fixed draw
            self.train = (src_all[keep], labels[keep])
            look = synthesize_domains(src_all[val], torch.Generator().manual_seed(self.seed + AUGMENT_STATS_SEED))
            self.val = (norm(look, src_stats), labels[val])
        else:
            self.train = (norm(src_all[keep], src_stats), labels[keep])
            self.val = (norm(src_all[val], src_stats), labels[val])
            # target images without labels (only `dann` trains on them)
            self.target = (norm(tgt_all[keep], tgt_stats),) if self.mode == "dann" else None
        if self.mode == "finetune":   # a few labelled target training images, balanced per class, by the run's seed
            few = keep[balanced_subset(labels[keep], self.target_labels, self.seed + LABELS_SEED_OFFSET)]
            self.labelled_target = (norm(tgt_all[few], tgt_stats), labels[few])

    def provides(self) -> DomainAdaptationSpec:
        self.setup()
        _, c, h, _ = self.train[0].shape
        record = {"train_images": int(len(self.train[0])),
                  "target_train_images": int(len(self.target[0])) if self.target is not None else 0,
                  "mnist_m_train": {k: self.built_meta.get(k) for k in ("sha256", "seed", "shape", "file")}}
        if self.labelled_target is not None:
            record["target_labels"] = int(len(self.labelled_target[1]))
            record["target_labels_per_class"] = torch.bincount(self.labelled_target[1], minlength=10).tolist()
        return DomainAdaptationSpec(num_classes=self.num_classes, in_channels=c, image_size=h,
                                    test_domains=TEST_DOMAINS, data_record=record,
                                    labelled_target=self.labelled_target, target_test=self.test_target)

    def train_dataloader(self):
        """Batches of `batch_size` images per domain, whole batches only (the paper's 64 + 64), this rank's share;
        resumed mid-epoch where the checkpoint left off (the base's `state_dict` keeps the place)."""
        dist = self._dist()
        loader = InMemoryLoader(*self.train, batch_size=self.batch_size, shuffle=True, seed=self.seed,
                                drop_last=True, **dist)
        if self.mode == "generalization":
            loader = AugmentedLoader(loader, *self.augment_stats, seed=self.seed)
        if self.target is not None:
            target = InMemoryLoader(*self.target, batch_size=self.batch_size, shuffle=True,
                                    seed=self.seed + TARGET_SEED_OFFSET, drop_last=True, **dist)
            loader = PairedLoader(loader, target)
        if getattr(self, "_resume_loader", None):
            loader.load_state_dict(self._resume_loader)
            self._resume_loader = None
        self._train_loader = loader
        return loader

    def test_dataloader(self):
        """[MNIST test, MNIST-M test] (`TEST_DOMAINS`): dataloader_idx 0 and 1 of the task's test_step."""
        return [InMemoryLoader(*data, batch_size=self.eval_batch_size, **self._dist())
                for data in (self.test_source, self.test_target)]
