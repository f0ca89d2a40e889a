"""One run end to end, in-process: results.json, statuses, seeds, loggers, errors."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from leedl_cli.paths import conf_dir

TASKS = sorted(p.stem for p in (conf_dir() / "task").glob("*.yaml"))
# tasks whose own test file runs their debug=smoke end to end (and checks what the task writes): not repeated here
OWN_SMOKE = {
    "atari": "test_atari.py", "bert_squad": "test_bert_smoke.py", "cartpole": "test_rl_tasks.py",
    "cifar10": "test_chapter2_images.py", "contextual_embeddings": "test_contextual_embeddings.py",
    "dann": "test_dann.py", "error_surface": "test_chapter1_surfaces.py", "fashion_mnist": "test_chapter2_images.py",
    "go_policy": "test_chapter2_go.py", "go_selfplay": "test_go_selfplay.py", "gym": "test_rl_tasks.py",
    "label_shift": "test_label_shift.py",
    "lm_pretrain": "test_gpt.py", "lunar_lander": "test_rl_tasks.py", "mc_vs_td": "test_rl_tasks.py",
    "minimum_ratio": "test_chapter1_minimum_ratio.py", "mlm_pretrain": "test_bert_smoke.py",
    "mnist": "test_chapter2_images.py", "nli": "test_nli.py", "pos_tagging": "test_pos_tagging.py",
    "sentiment": "test_bert_smoke.py", "sequence_speed": "test_chapter3_presets.py",
    "text_completion": "test_text_completion.py", "translation": "test_translation.py",
}


@pytest.mark.parametrize("task", sorted(OWN_SMOKE))
def test_a_task_with_its_own_smoke_test_has_one(task):
    """Every task runs end to end in debug=smoke once in the fast tier: here, or in the file named above."""
    text = (Path(__file__).parent / OWN_SMOKE[task]).read_text()
    assert task in TASKS and task in text and "smoke" in text


@pytest.mark.parametrize("task", [t for t in TASKS if t not in OWN_SMOKE])
def test_every_task_runs_end_to_end_in_smoke_mode(run_leedl, task, tmp_path):
    from ch2_files import WRITERS
    from ch5_gpt_files import WRITERS as GPT_WRITERS
    from test_bert_smoke import write_squad, write_sst2
    from test_dann import write_mirror
    from test_nli import write_snli
    from test_pos_tagging import write_ud
    from translation_files import write_multi30k

    writers = {**WRITERS, "bert_squad": write_squad, "sentiment": write_sst2, "mlm_pretrain": write_sst2,
               "nli": write_snli, "pos_tagging": write_ud, "dann": write_mirror, "translation": write_multi30k,
               **GPT_WRITERS}
    extra = []
    if task in writers:   # small files in the data set's real format, written here: no mirror needed
        writers[task](tmp_path / "data")
        extra = [f"data_dir={tmp_path}/data"]
    results = run_leedl([f"task={task}", "debug=smoke", *extra])
    assert results["status"] == "ok", results.get("error")
    assert results["tested_weights"] in ("best", "last", "ema", "loaded"), "results.json says which weights were tested"
    assert results["metrics"], "a run reports metrics"
    run_dir = Path(results["run_dir"])
    assert json.loads((run_dir / "results.json").read_text())["status"] == "ok"


def test_results_json_says_everything_report_needs(run_leedl):
    r = run_leedl(["debug=smoke", "seed=7", "model=mlp"])
    for key in ("status", "metrics", "timings", "seed", "overrides", "versions", "choices", "task", "model"):
        assert key in r
    assert r["seed"] == 7 and r["task"] == "digits" and r["model"] == "mlp"
    assert r["choices"]["optimizer"] == "adam"
    assert {"test/acc", "test/loss", "val/acc", "train/loss"} <= set(r["metrics"])
    t = r["timings"]
    assert t["total_s"] > 0 and t["per_update_s"] > 0 and t["per_epoch_s"] > 0 and t["batches"] == 3
    assert {"torch", "pytorch-lightning", "hydra-core"} <= set(r["versions"])
    run_dir = Path(r["run_dir"])
    assert (run_dir / "metrics.csv").is_file()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert not list(run_dir.glob(".results.json*")), "no temporary file left behind"


def test_random_seed_is_chosen_and_recorded(run_leedl):
    r = run_leedl(["debug=smoke"])
    assert isinstance(r["seed"], int)


def test_same_seed_same_metrics(run_leedl):
    a = run_leedl(["debug=smoke", "seed=3", "trainer.limit_train_batches=5"], name="a")
    b = run_leedl(["debug=smoke", "seed=3", "trainer.limit_train_batches=5"], name="b")
    c = run_leedl(["debug=smoke", "seed=4", "trainer.limit_train_batches=5"], name="c")
    assert a["metrics"] == b["metrics"]
    assert a["metrics"]["test/loss"] != c["metrics"]["test/loss"]


def test_digits_mlp_reaches_pinned_accuracy(run_leedl):
    """A small deterministic run: 3 epochs of the MLP on digits, seed 0."""
    r = run_leedl(["model=mlp", "seed=0", "trainer.max_epochs=3", "logger=none", "callbacks=none",
                   "trainer.enable_progress_bar=false", "trainer.deterministic=true"])
    assert r["status"] == "ok"
    assert r["metrics"]["test/acc"] == pytest.approx(0.9554, abs=0.015)
    assert not (Path(r["run_dir"]) / "checkpoints").exists(), "callbacks=none: no checkpoint Lightning adds itself"


def test_wandb_offline_run_directory_is_created(run_leedl):
    r = run_leedl(["debug=smoke", "logger=wandb"])
    assert r["status"] == "ok", r.get("error")
    runs = list((Path(r["run_dir"]) / "wandb").glob("offline-run-*"))
    assert runs and r["wandb_dir"] == str(runs[0])


def test_divergence_is_recorded_not_crashed(run_leedl):
    r = run_leedl(["debug=smoke", "model=mlp", "optimizer=sgd", "optimizer.lr=1e12"])
    assert r["status"] == "diverged"
    assert "test/acc" not in r["metrics"], "a diverged model is not tested"


def test_incompatible_model_is_refused_before_training(run_leedl):
    r = run_leedl(["debug=smoke", "model=cnn", "task.models=[mlp]"])
    assert r["status"] == "failed" and r["error_type"] == "IncompatibleModelError"
    assert "model=mlp" in r["error"] or "mlp" in r["error"]
    assert "timings" in r and r["timings"]["fit_s"] == 0


def test_missing_data_names_the_path_and_the_fix(run_leedl, tmp_path):
    r = run_leedl(["debug=smoke", "task=mnist", f"data_dir={tmp_path}/nowhere", "task.data.download=false"])
    assert r["status"] == "failed" and r["error_type"] == "DataNotFoundError"
    assert f"{tmp_path}/nowhere/mnist" in r["error"] and "LEEDL_DATA_DIR" in r["error"]


def test_bf16_mixed_precision_runs_on_the_cpu(run_leedl):
    """The precision override users take to GPUs (trainer.precision=bf16-mixed) also runs on the CPU."""
    r = run_leedl(["debug=smoke", "seed=0", "model=cnn", "trainer.precision=bf16-mixed"])
    assert r["status"] == "ok", r.get("error")
    assert 0.0 <= r["metrics"]["test/acc"] <= 1.0 and r["metrics"]["test/loss"] > 0


def test_channels_last_changes_the_memory_order_not_the_computation():
    """channels_last=true: the conv weights in channels-last order, so the convolutions compute (and return) in
    that order with the batch as it is; the network computes the same outputs."""
    import torch
    from torch import nn

    from leedl_cli.tasks.base import LeedlTask

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 5), nn.MaxPool2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 12 * 12, 10))
    x = torch.randn(4, 3, 28, 28)
    before = net(x)
    assert not net[0](x).is_contiguous(memory_format=torch.channels_last)
    LeedlTask(net).use_channels_last()
    assert net[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert net[0](x).is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(net(x), before, rtol=1e-4, atol=1e-5)


def test_channels_last_run_end_to_end(run_leedl):
    r = run_leedl(["debug=smoke", "seed=0", "model=cnn", "channels_last=true"])
    assert r["status"] == "ok", r.get("error")
    assert 0.0 <= r["metrics"]["test/acc"] <= 1.0
