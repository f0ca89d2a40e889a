"""Chapter 6, domain-adversarial training (task=dann): the gradient reversal layer, the lambda and learning-rate
schedules, the MNIST-M recipe and its cache, the paired source/target loader under DDP and on resume, end-to-end
smoke runs of the three modes on small files in the real formats (IDX .gz, a zip of PNGs with its labels file,
JPEG photographs) written here, a pinned small run in 32-bit (bf16-mixed and channels-last compared with it), and
the moving average of the weights that task.test_weights=ema tests (leedl_cli.ema)."""
from __future__ import annotations

import gzip
import io
import json
import math
import os
import signal
import zipfile
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from conftest import data_available

from leedl_cli.data.memory import InMemoryLoader
from leedl_cli.data.mnist_m import DomainAdaptationDataModule, DomainAdaptationSpec, PairedLoader
from leedl_cli.data.mnist_m_build import build_mnist_m, fit_size, mnist_m_train, read_mnist_m_test
from leedl_cli.errors import DataNotFoundError, LeedlError
from leedl_cli.models.dann import DANN, DomainBatchNorm, GradientReversal
from leedl_cli.optim.schedules import dann_annealing
from leedl_cli.tasks.dann import dann_lambda


# ---- small files in the real formats -------------------------------------------------------------------
def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def bar_digits(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """28x28 'digits' a small network can learn: class k is a bright bar at row 2 + 2k, jittered by one pixel."""
    x = np.zeros((len(labels), 28, 28), dtype=np.uint8)
    for i, k in enumerate(labels):
        r = 2 + 2 * int(k) + int(rng.integers(-1, 2))
        x[i, r:r + 3, 4:24] = 255
    return x


def write_mirror(root: Path, n_train: int = 160, n_test: int = 60, n_target_test: int = 50) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    (root / "mnist").mkdir(parents=True)
    y_train, y_test = rng.integers(0, 10, n_train), rng.integers(0, 10, n_test)
    write_idx(root / "mnist" / "train-images-idx3-ubyte.gz", bar_digits(y_train, rng))
    write_idx(root / "mnist" / "train-labels-idx1-ubyte.gz", y_train)
    write_idx(root / "mnist" / "t10k-images-idx3-ubyte.gz", bar_digits(y_test, rng))
    write_idx(root / "mnist" / "t10k-labels-idx1-ubyte.gz", y_test)
    # smooth colour 'photographs' (a coarse random grid, upsampled)
    photos = [np.asarray(Image.fromarray(rng.integers(0, 256, (5, 6, 3)).astype(np.uint8)).resize((w, h), Image.BILINEAR))
              for h, w in ((50, 60), (61, 45))]
    (root / "bsds500" / "train").mkdir(parents=True)
    for i, p in enumerate(photos):
        Image.fromarray(p.astype(np.uint8)).save(root / "bsds500" / "train" / f"{i}.jpg")
    # the real MNIST-M test split: 32x32 PNGs in mnist_m_test/ and `name label` lines, in a zip
    y_mm = rng.integers(0, 10, n_target_test)
    # as the real ones are made: the 28x28 digit padded by 2 pixels, then the recipe at 32x32
    mm = build_mnist_m(np.pad(bar_digits(y_mm, rng), [(0, 0), (2, 2), (2, 2)]), [p.astype(np.uint8) for p in photos], seed=1)
    (root / "mnist-m").mkdir()
    with zipfile.ZipFile(root / "mnist-m" / "mnist_m_test.zip", "w") as z:
        lines = []
        for i, (img, label) in enumerate(zip(mm, y_mm)):
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="PNG")
            z.writestr(f"mnist_m_test/{i:08d}.png", buf.getvalue())
            lines.append(f"{i:08d}.png {label}")
        z.writestr("mnist_m_test_labels.txt", "\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    return write_mirror(tmp_path_factory.mktemp("dann-data"))


# ---- gradient reversal, schedules ----------------------------------------------------------------------
@pytest.mark.parametrize("lambd", [0.0, 0.3, 1.0])
def test_gradient_reversal_is_identity_forward_and_minus_lambda_backward(lambd):
    x = torch.randn(4, 5, requires_grad=True)
    grl = GradientReversal(lambd)
    y = grl(x)
    assert torch.equal(y, x)
    upstream = torch.randn(4, 5)
    y.backward(upstream)
    assert torch.allclose(x.grad, -lambd * upstream)


def test_gradient_reversal_trains_features_against_the_domain_classifier():
    """Through G_d the features get -lambda times the gradient they would get without the layer."""
    torch.manual_seed(0)
    model = DANN(in_channels=3, num_classes=10, image_size=28, batch_norm=False)
    f = model.features(torch.randn(6, 3, 28, 28)).flatten(1).detach().requires_grad_(True)
    model.domain_logits(f, 0.5).sum().backward()
    reversed_grad = f.grad.clone()
    f.grad = None
    model.domain_classifier(f).sum().backward()
    assert torch.allclose(reversed_grad, -0.5 * f.grad, atol=1e-6)


def test_domain_batch_norm_keeps_each_domains_statistics_apart():
    """model.domain_batch_norm: G_f normalises source and target images by their own statistics, in training
    (batch statistics) and in evaluation (each domain's running statistics)."""
    torch.manual_seed(0)
    model = DANN(in_channels=3, num_classes=10, image_size=28, batch_norm=True, domain_batch_norm=True)
    bns = [m for m in model.features.modules() if isinstance(m, DomainBatchNorm)]
    assert len(bns) == 2
    source, target = torch.randn(16, 3, 28, 28), 3.0 + 2.0 * torch.randn(16, 3, 28, 28)
    model.train()
    with torch.no_grad():   # the running statistics follow the batches in training mode, gradients or not
        for _ in range(30):
            model.set_domain(0)
            model.features(source)
            model.set_domain(1)
            model.features(target)
    first = bns[0].bns
    assert float(first[1].running_mean.abs().mean()) > 3 * float(first[0].running_mean.abs().mean())
    model.eval()
    model.set_domain(1)
    on_target = model.features(target)
    model.set_domain(0)
    assert not torch.allclose(on_target, model.features(target))     # the other domain's statistics differ
    with pytest.raises(LeedlError, match="domain_batch_norm=true needs batch normalisation"):
        DANN(in_channels=3, num_classes=10, image_size=28, batch_norm=False, domain_batch_norm=True)


def test_lambda_schedule_follows_the_paper():
    assert dann_lambda(0.0) == 0.0
    assert dann_lambda(0.5) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
    assert dann_lambda(1.0) == pytest.approx(0.99991, abs=1e-5)
    assert dann_lambda(0.25, lambda_max=0.1) == pytest.approx(0.1 * (2 / (1 + math.exp(-2.5)) - 1))
    values = [dann_lambda(p / 10) for p in range(11)]
    assert all(a < b for a, b in zip(values, values[1:]))


def test_dann_annealing_is_mu0_over_1_plus_10p_to_the_075():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
    sched = dann_annealing(opt, total_steps=100)
    lrs = []
    for _ in range(101):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.01)
    assert lrs[50] == pytest.approx(0.01 / 6 ** 0.75)
    assert lrs[100] == pytest.approx(0.01 / 11 ** 0.75)


# ---- MNIST-M recipe, reading, cache --------------------------------------------------------------------
def test_mnist_m_recipe_is_abs_of_photo_patch_minus_binarised_digit():
    rng = np.random.default_rng(3)
    digits = rng.integers(0, 256, (20, 28, 28)).astype(np.uint8)
    digits[digits < 128] = 0
    photo = rng.integers(0, 256, (40, 50, 3)).astype(np.uint8)
    out = build_mnist_m(digits, [photo], seed=5)
    assert out.shape == (20, 28, 28, 3) and out.dtype == np.uint8
    assert np.array_equal(out, build_mnist_m(digits, [photo], seed=5))          # seeded
    assert not np.array_equal(out, build_mnist_m(digits, [photo], seed=6))
    for img, digit in zip(out, digits):
        on = digit > 0
        # undo the recipe: where the digit is off the pixel is the photo's, where on it is 255 - photo
        patch = np.where(on[..., None], 255 - img.astype(int), img.astype(int))
        found = [(y, x) for y in range(40 - 27) for x in range(50 - 27)
                 if np.array_equal(photo[y:y + 28, x:x + 28], patch)]
        assert found, "every image is |a 28x28 window of a photo - 255 * binarised digit|"


def test_reads_the_mnist_m_test_zip_in_label_file_order(mirror):
    x, y = read_mnist_m_test(mirror / "mnist-m" / "mnist_m_test.zip")
    assert x.shape == (50, 32, 32, 3) and y.shape == (50,) and y.min() >= 0 and y.max() <= 9


@pytest.mark.skipif(not data_available("mnist-m"), reason="the data mirror (mnist-m) is not beside this checkout")
def test_reads_the_real_mnist_m_test_split():
    from leedl_cli.paths import default_data_dir

    x, y = read_mnist_m_test(default_data_dir() / "mnist-m" / "mnist_m_test.zip")
    assert x.shape == (9001, 32, 32, 3)
    assert np.bincount(y, minlength=10).min() > 700    # every digit present, roughly balanced
    assert y[:6].tolist() == [7, 2, 1, 0, 4, 1]         # the first MNIST test labels: MNIST-M test is built from them


@pytest.mark.skipif(not data_available("mnist-m") or not data_available("mnist"),
                    reason="the data mirror (mnist, mnist-m) is not beside this checkout")
def test_real_mnist_m_test_digits_are_padded_mnist_digits_not_resized():
    """Why sizes are matched by cropping/padding: the mean 32x32 test image is MNIST's mean digit padded by 2
    pixels (correlation ~0.996), not MNIST's mean digit resized to 32 (~0.966)."""
    from leedl_cli.data.images import read_idx
    from leedl_cli.paths import default_data_dir

    x, _ = read_mnist_m_test(default_data_dir() / "mnist-m" / "mnist_m_test.zip")
    mean_mm = x.astype(np.float32).mean(axis=(0, 3))
    digits = read_idx(default_data_dir() / "mnist" / "t10k-images-idx3-ubyte.gz").astype(np.float32).mean(0)
    padded = np.pad(digits, 2)
    resized = torch.nn.functional.interpolate(torch.tensor(digits)[None, None], size=32, mode="bilinear",
                                              align_corners=False)[0, 0].numpy()
    corr = {name: np.corrcoef(mean_mm.ravel(), t.ravel())[0, 1] for name, t in (("pad", padded), ("resize", resized))}
    assert corr["pad"] > 0.99 and corr["pad"] > corr["resize"] + 0.02, corr


def test_fit_size_crops_or_pads_by_the_border_and_never_resizes():
    a = np.arange(2 * 32 * 32 * 3, dtype=np.int64).reshape(2, 32, 32, 3).astype(np.uint8)
    assert np.array_equal(fit_size(a, 28), a[:, 2:30, 2:30])
    g = np.full((3, 28, 28), 7, dtype=np.uint8)
    p = fit_size(g, 32)
    assert p.shape == (3, 32, 32) and p[:, 2:30, 2:30].min() == 7 and p[:, :2].max() == 0 and p[:, :, 30:].max() == 0
    assert fit_size(g, 28) is g
    with pytest.raises(LeedlError, match="image_size=29.*28 or 32"):
        fit_size(g, 29)


def test_built_mnist_m_is_cached_with_checksum_and_rebuilt_when_missing(mirror, tmp_path, monkeypatch):
    monkeypatch.setenv("LEEDL_CACHE_DIR", str(tmp_path / "cache"))
    images, meta = mnist_m_train(mirror / "mnist", mirror / "bsds500" / "train", seed=0)
    npy = Path(meta["file"])
    assert npy.is_file() and images.shape == (160, 28, 28, 3)
    recorded = json.loads(npy.with_suffix(".json").read_text())
    assert recorded["sha256"] == meta["sha256"] and set(recorded["inputs_sha256"]) == {"mnist", "bsds500"}
    mtime = npy.stat().st_mtime_ns
    again, _ = mnist_m_train(mirror / "mnist", mirror / "bsds500" / "train", seed=0)
    assert np.array_equal(again, images) and npy.stat().st_mtime_ns == mtime     # read from the cache
    npy.unlink()
    rebuilt, _ = mnist_m_train(mirror / "mnist", mirror / "bsds500" / "train", seed=0)
    assert np.array_equal(rebuilt, images) and npy.is_file()
    other, meta1 = mnist_m_train(mirror / "mnist", mirror / "bsds500" / "train", seed=1)
    assert meta1["file"] != meta["file"] and not np.array_equal(other, images)    # keyed by the seed


def test_data_module_provides_the_spec_and_the_modes_batches(mirror):
    dm = DomainAdaptationDataModule(root=str(mirror), mode="dann", batch_size=8, val_size=16)
    spec = dm.provides()
    assert isinstance(spec, DomainAdaptationSpec)
    assert (spec.num_classes, spec.in_channels, spec.image_size) == (10, 3, 28)
    assert spec.test_domains == ("source", "target")
    assert spec.data_record["train_images"] == spec.data_record["target_train_images"] == 144
    assert spec.data_record["mnist_m_train"]["shape"] == [160, 28, 28, 3]
    xs, ys, xt = next(iter(dm.train_dataloader()))
    assert xs.shape == xt.shape == (8, 3, 28, 28) and ys.shape == (8,)
    assert abs(float(dm.train[0].mean())) < 1e-4 and abs(float(dm.target[0].mean())) < 1e-4   # per-domain normalised
    source_test, target_test = dm.test_dataloader()
    assert next(iter(target_test))[0].shape[1:] == (3, 28, 28)    # 32x32 MNIST-M test cropped to 28x28
    assert len(source_test.tensors[0]) == 60 and len(target_test.tensors[0]) == 50
    big = DomainAdaptationDataModule(root=str(mirror), mode="dann", batch_size=8, val_size=16, image_size=32)
    assert big.provides().image_size == 32                         # MNIST padded, MNIST-M built at 32
    xs, _, xt = next(iter(big.train_dataloader()))
    assert xs.shape == xt.shape == (8, 3, 32, 32)
    assert big.test_target[0].shape[1:] == (3, 32, 32) and big.built_meta["shape"] == [160, 32, 32, 3]
    only = DomainAdaptationDataModule(root=str(mirror), mode="target_only", batch_size=8, val_size=16)
    assert only.provides().data_record["target_train_images"] == 0
    assert only.target is None and len(next(iter(only.train_dataloader()))) == 2
    subset = DomainAdaptationDataModule(root=str(mirror), mode="dann", batch_size=8, val_size=16, train_size=40)
    assert subset.provides().data_record["train_images"] == 40 and len(subset.target[0]) == 40


def test_missing_data_is_a_clear_error(tmp_path):
    with pytest.raises(DataNotFoundError, match="mnist"):
        DomainAdaptationDataModule(root=str(tmp_path)).setup()


def test_bad_options_are_refused_before_the_run(compose_cfg):
    from leedl_cli.validate import problems

    assert problems(compose_cfg(["task=dann"])) == []
    found = " | ".join(problems(compose_cfg(["task=dann", "task.mode=adversarial"])))
    assert "mode=adversarial: expected one of source_only, dann, target_only" in found
    assert "image_size=29: expected an even size" in " ".join(problems(compose_cfg(["task=dann", "task.data.image_size=29"])))
    assert "domain_batch_norm=true: expected batch_norm=true" in " ".join(
        problems(compose_cfg(["task=dann", "model.domain_batch_norm=true"])))


# ---- the paired loader: DDP shares and mid-epoch resume --------------------------------------------------
def paired(n_source: int, n_target: int, rank: int = 0, world_size: int = 1) -> PairedLoader:
    source = InMemoryLoader(torch.arange(n_source), torch.arange(n_source) % 10, batch_size=4, shuffle=True,
                            seed=1, drop_last=True, rank=rank, world_size=world_size)
    target = InMemoryLoader(1000 + torch.arange(n_target), batch_size=4, shuffle=True, seed=2, drop_last=True,
                            rank=rank, world_size=world_size)
    return PairedLoader(source, target)


def ids(batches) -> list[tuple[list[int], list[int]]]:
    return [(xs.tolist(), xt.tolist()) for xs, _, xt in batches]


def test_paired_loader_gives_each_ddp_rank_its_share_of_both_domains():
    ranks = [paired(40, 40, rank=r, world_size=2) for r in (0, 1)]
    for lo in ranks:
        lo.set_epoch(3)
    epochs = [ids(lo) for lo in ranks]
    assert len(epochs[0]) == len(epochs[1]) == len(ranks[0]) == 5             # 20 of the 40 images per rank
    for domain in (0, 1):
        seen = [i for rank in epochs for pair in rank for i in pair[domain]]
        assert len(seen) == 40 and len(set(seen)) == 40                         # every image once, no rank twice
    assert ids(paired(40, 40, 0, 2)) != epochs[0]                              # the shuffle follows the epoch


@pytest.mark.parametrize("stop_after", [3, 7])   # 7: after the smaller target set has run out once
def test_paired_loader_resumes_mid_epoch_with_the_same_pairs(stop_after):
    whole = paired(40, 20)
    whole.set_epoch(2)
    expected = ids(whole)
    assert len(expected) == 10 and expected[5][1] != expected[0][1]           # the target reshuffled when it ran out
    stopped = paired(40, 20)
    stopped.set_epoch(2)
    batches = iter(stopped)
    for _ in range(stop_after + 1):   # Lightning fetches one batch ahead of the one it trains
        next(batches)
    stopped.batches_trained = stop_after                                     # what a stop records (leedl_cli.signals)
    state = stopped.state_dict()
    assert state == {"epoch": 2, "batches": stop_after}
    resumed = paired(40, 20)
    resumed.load_state_dict(state)
    resumed.set_epoch(2)
    assert ids(resumed) == expected[stop_after:]


def test_data_module_shards_under_ddp_and_keeps_its_place_in_checkpoints(mirror):
    from types import SimpleNamespace

    def module(rank: int) -> DomainAdaptationDataModule:
        dm = DomainAdaptationDataModule(root=str(mirror), mode="dann", batch_size=8, val_size=16)
        dm.trainer = SimpleNamespace(global_rank=rank, world_size=2)
        dm.setup()
        return dm

    dms = [module(0), module(1)]
    loaders = [dm.train_dataloader() for dm in dms]
    assert all(len(lo) == 9 for lo in loaders)              # 72 of the 144 source images per rank, 8 per batch
    for r, lo in enumerate(loaders):                          # both domains' loaders take this rank's share
        assert (lo.source.rank, lo.target.rank, lo.source.world_size, lo.target.world_size) == (r, r, 2, 2)
    assert [sum(len(b[0]) for b in dm.val_dataloader()) for dm in dms] == [8, 8]
    shares = [sum(len(b[0]) for b in dm.test_dataloader()[1]) for dm in dms]
    assert sum(shares) == 50                                  # the MNIST-M test images, each on one rank
    loader = loaders[0]
    loader.set_epoch(1)
    it = iter(loader)
    for _ in range(5):
        next(it)
    loader.batches_trained = 4
    state = dms[0].state_dict()                               # what Lightning writes into the checkpoint
    resumed = module(0)
    resumed.load_state_dict(state)
    again = resumed.train_dataloader()
    whole = module(0).train_dataloader()
    whole.set_epoch(1)
    expected = [torch.cat([xs, xt]) for xs, _, xt in whole][4:]
    assert all(torch.equal(torch.cat([xs, xt]), e) for (xs, _, xt), e in zip(again, expected, strict=True))


# ---- end to end ----------------------------------------------------------------------------------------
def test_dann_configs_compose(compose_cfg):
    cfg = compose_cfg(["task=dann"])
    assert cfg.model.name == "dann_cnn" and cfg.task.mode == "dann" and cfg.task.data.mode == "dann"
    assert cfg.scheduler._target_.endswith("dann_annealing")
    assert cfg.task.test_weights == "ema" and cfg.task.ema_decay == 0.999
    # the task file's root options take effect (the primary config's own values come first in its defaults list)
    assert cfg.channels_last is True and cfg.threads == 1 and cfg.trainer.precision == "bf16-mixed"
    assert compose_cfg(["task=dann", "threads=2", "channels_last=false"]).threads == 2
    assert compose_cfg(["task=digits"]).channels_last is False
    cfg = compose_cfg(["experiment=dann_table"])
    assert set(cfg.hydra.sweeper.params["task.mode"].split(",")) == {"source_only", "dann", "target_only"}


@pytest.mark.parametrize("mode", ["source_only", "dann", "target_only", "dann_dsbn", "dann_last"])
def test_dann_smoke_end_to_end(run_leedl, mirror, mode):
    extra = {"dann_dsbn": ["model.batch_norm=true", "model.domain_batch_norm=true"],
             "dann_last": ["task.test_weights=last"]}.get(mode, [])
    task_mode = mode.removesuffix("_dsbn").removesuffix("_last")
    r = run_leedl(["task=dann", f"task.mode={task_mode}", "debug=smoke", f"data_dir={mirror}", "seed=0", *extra], name=mode)
    assert r["status"] == "ok", r.get("error")
    m = r["metrics"]
    assert 0 <= m["test/target_acc"] <= 1 and 0 <= m["test/source_acc"] <= 1
    assert r["test_target_images"] == 50 and r["test_source_images"] == 60
    assert r["mode"] == task_mode and r["train_images"] == 144
    assert r["target_train_images"] == (144 if task_mode == "dann" else 0)
    assert ("train/domain_acc" in m) == mode.startswith("dann")
    assert Path(r["tsne"]).is_file()
    assert r["tested_weights"] == ("last" if mode == "dann_last" else "ema")


def test_dann_refuses_other_models(run_leedl, mirror):
    r = run_leedl(["task=dann", "model=cnn", "debug=smoke", f"data_dir={mirror}"])
    assert r["status"] == "failed" and "dann_cnn" in r["error"]


# ---- a small run: pinned in 32-bit, bf16 and channels-last against it -----------------------------------
SMALL_RUN = ["task=dann", "task.mode=dann", "seed=0", "logger=none", "callbacks=none", "trainer.max_epochs=4",
             "trainer.enable_progress_bar=false", "optimizer=adam", "optimizer.lr=3e-3", "task.data.batch_size=16",
             "model.batch_norm=true", "task.ema_decay=0.8", "task.data.val_size=16", "task.module.tsne_points=0",
             "trainer.deterministic=true"]


@pytest.fixture(scope="module")
def small_fp32_run(mirror, tmp_path_factory):
    from conftest import run_overrides

    return run_overrides([*SMALL_RUN, f"data_dir={mirror}", "trainer.precision=32-true"],
                         tmp_path_factory.mktemp("small-fp32") / "run")


# measured on this run (CPU, 32-bit, channels-last as the task's default); 60 source / 50 target test images,
# so one image is 0.017 / 0.02. Tested on the moving average of the weights (task.test_weights=ema)
PINNED = {"test/source_acc": 0.65, "test/target_acc": 0.20, "train/domain_acc": 0.0972, "val/acc": 0.5625}


def test_small_dann_run_is_pinned(small_fp32_run):
    """4 epochs (36 updates) of DANN (Adam 3e-3) on the bar 'digits' (144 source + 144 target training images),
    in 32-bit floats: above chance on both domains, and the numbers are those of this deterministic run. With batch
    normalisation (model.batch_norm=true): without it, 36 updates (or 72) leave the toy target domain at chance.
    The domain classifier ends below 0.5 here: with lambda near 1 the reversed gradient moves the features faster
    than G_d follows. Tested with a moving average of the weights over about 5 updates (ema_decay=0.8)."""
    r = small_fp32_run
    assert r["status"] == "ok", r.get("error")
    assert r["tested_weights"] == "ema" and r["updates"] == 36
    m = r["metrics"]
    assert m["test/source_acc"] > 0.3 and m["test/target_acc"] > 0.1    # above chance (0.1) after 36 updates
    for k, v in PINNED.items():
        assert m[k] == pytest.approx(v, abs=0.02), (k, {q: m[q] for q in PINNED})


@pytest.mark.slow
def test_bf16_mixed_learns_as_the_32_bit_run_does(run_leedl, mirror, small_fp32_run):
    """The same run in bf16-mixed (the task's default): its numbers differ with the CPU's bf16 arithmetic, so they
    are not pinned; it learns the source domain as the 32-bit run does."""
    r = run_leedl([*SMALL_RUN, f"data_dir={mirror}", "trainer.precision=bf16-mixed"])
    assert r["status"] == "ok", r.get("error")
    bf16, fp32 = r["metrics"], small_fp32_run["metrics"]
    for m in (bf16, fp32):
        assert m["train/acc"] > 0.5 and m["test/source_acc"] > 0.3     # chance: 0.1
    assert abs(bf16["train/acc"] - fp32["train/acc"]) < 0.1
    assert abs(bf16["test/source_acc"] - fp32["test/source_acc"]) < 0.15   # 60 test images: 0.15 is 9 of them


@pytest.mark.slow
def test_channels_last_is_the_same_computation(run_leedl, mirror, small_fp32_run):
    r = run_leedl([*SMALL_RUN, f"data_dir={mirror}", "trainer.precision=32-true", "channels_last=false"])
    assert r["status"] == "ok", r.get("error")
    contiguous, channels_last = r["metrics"], small_fp32_run["metrics"]
    assert contiguous["train/loss"] == pytest.approx(channels_last["train/loss"], rel=1e-4)
    for k in PINNED:
        assert contiguous[k] == pytest.approx(channels_last[k], abs=1e-6), k


class SignalAt(pl.Callback):
    """Sends this process SIGTERM after update `step`, as `docker stop` or SLURM would."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.slow
def test_a_run_stopped_mid_epoch_resumes_to_the_numbers_of_the_whole_run(mirror, tmp_path, monkeypatch,
                                                                       small_fp32_run):
    """Stopped after update 20 (epoch 2, its third pair of batches) and resumed: the same paired batches, the same
    moving average of the weights and the same epoch tallies as the run that was not stopped."""
    from conftest import run_overrides

    from leedl_cli import run

    build = run.build_callbacks
    overrides = [*SMALL_RUN, f"data_dir={mirror}", "trainer.precision=32-true"]
    monkeypatch.setattr(run, "build_callbacks", lambda cfg, run_dir: build(cfg, run_dir) + [SignalAt(20)])
    stopped = run_overrides(overrides, tmp_path / "run")
    assert stopped["status"] == "interrupted" and stopped["interrupted_at_step"] == 20
    assert stopped["interrupted_checkpoint"].endswith("last.ckpt")
    monkeypatch.setattr(run, "build_callbacks", build)
    resumed = run_overrides([*overrides, f"resume={tmp_path / 'run'}"], tmp_path / "run")
    assert resumed["status"] == "ok", resumed.get("error")
    assert resumed["resumed"][0]["from_step"] == 20
    for k, v in small_fp32_run["metrics"].items():
        assert resumed["metrics"][k] == pytest.approx(v, rel=1e-6, abs=1e-9), k


def test_channels_last_dann_step_has_the_same_loss_and_gradients():
    """One DANN training step of the model in channels-last memory order: the loss and every gradient of the
    contiguous model, within float tolerance."""
    torch.manual_seed(0)
    model = DANN(3, 10, 28, batch_norm=True)
    twin = DANN(3, 10, 28, batch_norm=True)
    twin.load_state_dict(model.state_dict())
    twin.to(memory_format=torch.channels_last)
    x, y = torch.randn(16, 3, 28, 28), torch.randint(0, 10, (16,))
    d = torch.cat([torch.zeros(8), torch.ones(8)])
    losses = []
    for m in (model, twin):
        f = m.features_of(x)
        loss = F.cross_entropy(m.label_predictor(f[:8]), y[:8]) + F.binary_cross_entropy_with_logits(
            m.domain_logits(f, 0.7), d)
        loss.backward()
        losses.append(loss)
    assert twin.features.net[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(losses[0], losses[1], rtol=1e-5)
    for (name, a), b in zip(model.named_parameters(), twin.parameters()):
        assert torch.allclose(a.grad, b.grad, rtol=1e-4, atol=1e-5), name   # sums in another order


# ---- the moving average of the weights (task.test_weights=ema) ----------------------------------------------
class TinyRegression(pl.LightningModule):
    """y = w x + b by SGD on a fixed set; records the weights after every update and those it is tested with."""

    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.BatchNorm1d(3), torch.nn.Linear(3, 1))
        self.after_updates: list[dict] = []
        self.tested: dict | None = None

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.mse_loss(self.net(x).squeeze(-1), y)

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        self.after_updates.append({k: v.detach().clone() for k, v in self.net.state_dict().items()})

    def test_step(self, batch, batch_idx):
        self.tested = {k: v.detach().clone() for k, v in self.net.state_dict().items()}

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def tiny_data(n: int = 32):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=g)
    return x, x @ torch.tensor([1.0, -2.0, 0.5]) + 0.3


def tiny_trainer(ema, epochs: int, root: Path) -> pl.Trainer:
    """32 examples in batches of 8: 4 updates an epoch."""
    return pl.Trainer(max_epochs=epochs, callbacks=[ema], logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(root))


def test_ema_weights_tests_the_average_computed_by_hand(tmp_path):
    from leedl_cli.ema import EMAWeights

    torch.manual_seed(0)
    x, y = tiny_data()
    module, ema = TinyRegression(), EMAWeights(decay=0.75)
    trainer = tiny_trainer(ema, 2, tmp_path)
    trainer.fit(module, InMemoryLoader(x, y, batch_size=8, shuffle=True))
    final = {k: v.clone() for k, v in module.net.state_dict().items()}
    expected = dict(module.after_updates[0])                   # the first update copies the weights
    for weights in module.after_updates[1:]:
        expected = {k: 0.75 * expected[k] + 0.25 * v if v.is_floating_point() else v for k, v in weights.items()}
    trainer.test(module, InMemoryLoader(x, y, batch_size=8))
    assert ema.updates == 8
    for k, v in expected.items():
        if v.is_floating_point():    # weights, bias, running mean and variance: the average
            assert torch.allclose(module.tested[k], v, atol=1e-6), k
            assert not torch.allclose(v, final[k]), k
        else:                        # the batch count is the model's own
            assert torch.equal(module.tested[k], final[k]), k
    assert all(torch.equal(module.net.state_dict()[k], v) for k, v in final.items())   # trained weights back


def test_ema_weights_are_saved_in_the_checkpoint_and_resumed(tmp_path, monkeypatch):
    """A run stopped after one epoch (4 updates) and resumed from its checkpoint ends with the average of the run
    that was not stopped (the average is in the checkpoint, not restarted from the resumed weights)."""
    from leedl_cli.ema import EMAWeights

    x, y = tiny_data()

    def fit(epochs: int, ckpt: str | None = None, save: Path | None = None) -> EMAWeights:
        torch.manual_seed(0)
        module, ema = TinyRegression(), EMAWeights(decay=0.75)
        trainer = tiny_trainer(ema, epochs, tmp_path)
        trainer.fit(module, InMemoryLoader(x, y, batch_size=8, shuffle=True), ckpt_path=ckpt)
        if save is not None:
            trainer.save_checkpoint(save)
        return ema

    whole = fit(2)
    fit(1, save=tmp_path / "epoch1.ckpt")
    saved = torch.load(tmp_path / "epoch1.ckpt", weights_only=False)["callbacks"]
    assert [s["updates"] for k, s in saved.items() if k.startswith("EMAWeights")] == [4]
    resumed = fit(2, ckpt=str(tmp_path / "epoch1.ckpt"))
    assert resumed.updates == whole.updates == 8
    for k, v in whole.average.items():
        assert torch.allclose(resumed.average[k], v, atol=1e-6), k
    # a resume that did not restore the average (it starts again from the resumed weights) ends elsewhere
    monkeypatch.setattr(EMAWeights, "load_state_dict", lambda self, state: None)
    restarted = fit(2, ckpt=str(tmp_path / "epoch1.ckpt"))
    assert restarted.updates == 4
    assert not all(torch.allclose(restarted.average[k], v, atol=1e-6) for k, v in whole.average.items())


def test_ema_weights_refuses_a_test_with_no_average_and_a_bad_decay(tmp_path):
    from leedl_cli.ema import EMAWeights

    with pytest.raises(LeedlError, match="0 < d < 1"):
        EMAWeights(decay=1.5)
    x, y = tiny_data()
    trainer = tiny_trainer(EMAWeights(0.9), 1, tmp_path)
    with pytest.raises(LeedlError, match="no moving average of the weights to test"):
        trainer.test(TinyRegression(), InMemoryLoader(x, y, batch_size=8))


def test_report_draws_source_only_vs_dann_tsne(tmp_path):
    from leedl_cli.analysis.dann_tsne import report_tsne

    rng = np.random.default_rng(0)
    runs = []
    for mode in ("source_only", "dann", "target_only"):
        d = tmp_path / mode
        (d / "plots").mkdir(parents=True)
        np.savez(d / "plots" / "tsne.npz", xy=rng.normal(size=(20, 2)), domain=np.repeat([0, 1], 10),
                 label=np.zeros(20), mode=mode)
        runs.append({"_dir": d, "seed": 0, "overrides": [f"task.mode={mode}", "seed=0"]})
    paths = report_tsne(runs, tmp_path)
    assert [p.name for p in paths] == ["tsne_source_only_vs_dann.png"] and paths[0].stat().st_size > 1000
    assert report_tsne([runs[2]], tmp_path) == []    # neither source-only nor DANN runs: no picture


def test_bf16_on_a_cpu_without_bf16_instructions_warns(caplog):
    """task=dann defaults to bf16-mixed (fast on CPUs with AMX / AVX512-BF16); elsewhere it is emulated: say so."""
    from types import SimpleNamespace

    from omegaconf import OmegaConf

    from leedl_cli.run import warn_slow_cpu_bf16

    def fake_torch(supported: bool):
        return SimpleNamespace(ops=SimpleNamespace(mkldnn=SimpleNamespace(_is_mkldnn_bf16_supported=lambda: supported)))

    cfg = OmegaConf.create({"trainer": {"precision": "bf16-mixed", "accelerator": "cpu"}})
    with caplog.at_level("WARNING", logger="leedl"):
        warn_slow_cpu_bf16(cfg, fake_torch(True))
        assert not caplog.records
        warn_slow_cpu_bf16(OmegaConf.create({"trainer": {"precision": "32-true", "accelerator": "cpu"}}), fake_torch(False))
        assert not caplog.records
        warn_slow_cpu_bf16(cfg, fake_torch(False))
    assert "trainer.precision=32-true" in caplog.text and "without bfloat16" in caplog.text
