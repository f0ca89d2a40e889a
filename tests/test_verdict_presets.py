"""The presets of issue 16: batch_size_gap_converged (MNIST, Fashion-MNIST), pg_versions_long, minimum_ratio with and
without blank pixels."""
from __future__ import annotations

import csv

import numpy as np
import pytest


def write_idx(path, array: np.ndarray) -> None:
    from ch2_files import write_idx as write

    write(path, array, compresslevel=1)


@pytest.fixture
def tiny_mnist(tmp_path):
    """MNIST's real file format and sizes (60,000 / 10,000), simple images: each class a bright bar in its own rows."""
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    for prefix, n in (("train", 60000), ("t10k", 10000)):
        y = np.arange(n) % 10
        x = np.zeros((n, 28, 28), dtype=np.uint8)
        for c in range(10):
            x[y == c, 2 * c + 3: 2 * c + 6, 4:24] = 250
        x[:, 0, :] = (np.arange(n) % 251)[:, None]          # something that differs between images of one class
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", x)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", y)
    return tmp_path / "data"


def test_presets_compose(compose_cfg):
    cfg = compose_cfg(["experiment=batch_size_gap_converged"])
    assert cfg.task.data.val_size == 0 and cfg.callbacks.stop_when_converged.stopping_threshold == 0.995
    assert cfg.hydra.sweeper.params["task.data.batch_size"] == "256,6000"
    assert cfg.hydra.sweeper.params.seed == "0,1,2,3,4"
    cfg = compose_cfg(["experiment=pg_versions_long"])
    assert cfg.task.module.max_env_steps == 1_000_000 and cfg.task.module.gae_lambda == 0.0
    assert "return_last_quarter" in cfg.report.metrics
    cfg = compose_cfg(["experiment=batch_size_gap_converged_fashion"])
    assert cfg.task.name == "fashion_mnist" and cfg.model.name == "mlp" and cfg.task.data.val_size == 0
    assert cfg.callbacks.stop_when_converged.stopping_threshold == 0.995 and cfg.trainer.max_epochs == 400
    assert cfg.hydra.sweeper.params["task.data.batch_size"] == "256,6000"
    assert [row.check for row in cfg.report.book] == ["each >= 0.995", "each >= 0.995", "256 > 6000"]
    cfg = compose_cfg(["experiment=minimum_ratio"])
    assert cfg.hydra.sweeper.params["task.data.drop_blank_pixels"] == "false,true"


def test_converged_preset_stops_when_train_accuracy_reaches_the_threshold(run_leedl, tiny_mnist, tmp_path):
    r = run_leedl(["experiment=batch_size_gap_converged", "debug=smoke", f"data_dir={tiny_mnist}",
                   "task.data.download=false", "task.data.train_size=1000", "task.data.batch_size=100",
                   "trainer.limit_train_batches=null", "trainer.limit_test_batches=1", "trainer.max_epochs=8",
                   "logger=csv", "threads=1", "seed=0"], name="converged")
    assert r["status"] == "ok", r.get("error")
    with open(tmp_path / "converged" / "metrics.csv") as f:
        per_epoch = [float(row["train/acc"]) for row in csv.DictReader(f) if row.get("train/acc")]
    assert len(per_epoch) == r["timings"]["epochs"] < 8, "the threshold ended the run, not the budget"
    assert per_epoch[-1] >= 0.995 and all(a < 0.995 for a in per_epoch[:-1]), per_epoch


def test_converged_preset_on_fashion_mnist_smoke(run_leedl, tmp_path):
    from ch2_files import write_idx_set

    write_idx_set(tmp_path / "data" / "fashion-mnist")
    r = run_leedl(["experiment=batch_size_gap_converged_fashion", "debug=smoke", f"data_dir={tmp_path}/data",
                   "task.data.download=false", "logger=none", "threads=1", "seed=0"], name="fashion")
    assert r["status"] == "ok", r.get("error")
    assert r["task"] == "fashion_mnist" and 0 <= r["metrics"]["test/acc"] <= 1


def test_pg_versions_long_smoke(run_leedl):
    r = run_leedl(["experiment=pg_versions_long", "debug=smoke", "task.module.version=v4", "seed=0"])
    assert r["status"] == "ok", r.get("error")
    assert "test/return_mean" in r["metrics"]
    assert len(r["return_by_quarter"]) == 4 and r["return_last_quarter"] == r["return_by_quarter"][-1]


def test_quarter_means_split_the_episodes_by_the_env_step_they_ended_at():
    from leedl_cli.tasks.policy_gradient import quarter_means

    episodes = [(10, 20.0), (25, 40.0), (26, 100.0), (60, 300.0), (80, 500.0), (100, 499.0)]
    assert quarter_means(episodes, 100) == [30.0, 100.0, 300.0, 499.5]
    assert quarter_means([(90, 7.0)], 100) == [None, None, None, 7.0]


def test_blank_pixels_explain_zero_eigenvalues(run_leedl):
    base = ["task=minimum_ratio", "debug=smoke", "threads=1", "seed=0"]
    r = run_leedl(base, name="all_pixels")
    assert r["status"] == "ok", r.get("error")
    # 4 of digits' 64 pixels are the same in every training image; each gives one zero eigenvalue per hidden unit
    assert r["n_blank_inputs"] == 4 and r["zero_eigenvalues_from_blank_inputs"] == 16
    assert r["n_zero"] >= 16
    assert sum(abs(v) <= r["zero_tol"] * max(map(abs, r["eigenvalues"])) for v in r["eigenvalues"]) == r["n_zero"]
    r = run_leedl(base + ["task.data.drop_blank_pixels=true"], name="no_blank")
    assert r["status"] == "ok", r.get("error")
    assert r["n_parameters"] == 60 * 4 + 4 + 4 * 10 + 10 and r["n_blank_inputs"] == 0
    assert r["n_positive"] + r["n_negative"] + r["n_zero"] == r["n_parameters"]
    assert r["minimum_ratio_nonzero"] == pytest.approx(r["n_positive"] / (r["n_positive"] + r["n_negative"]))
