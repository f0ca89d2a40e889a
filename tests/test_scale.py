"""Scale and resilience: resume after SIGKILL, DDP (ddp_sim) single and multirun, joblib, skip_done, Optuna.

All through the `leedl` command in subprocesses, as a user (or a cluster's pre-emption) would do it.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow   # every test here runs `leedl` in subprocesses (signals, DDP, sweeps, Optuna)

REPO = Path(__file__).resolve().parents[1]
QUIET = ["logger=csv", "trainer.enable_progress_bar=false"]


def leedl(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, WANDB_MODE="offline", HYDRA_FULL_ERROR="0")
    return subprocess.run([sys.executable, "-m", "leedl_cli.cli", *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=timeout)


def results_under(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.rglob("results.json"))]


def epochs_logged(metrics_csv: Path) -> int:
    """Epochs whose validation row is in metrics.csv (the checkpoint of that epoch is written right after)."""
    if not metrics_csv.is_file():
        return 0
    lines = metrics_csv.read_text().splitlines()
    if not lines:
        return 0
    col = lines[0].split(",").index("val/acc") if "val/acc" in lines[0] else None
    return 0 if col is None else sum(1 for line in lines[1:] if len(line.split(",")) > col and line.split(",")[col])


def test_killed_run_resumes_to_the_same_result(tmp_path):
    args = ["trainer.max_epochs=8", "seed=3", "trainer.deterministic=true", *QUIET]   # digits, cnn (dropout)
    env = dict(os.environ, WANDB_MODE="offline")
    proc = subprocess.Popen([sys.executable, "-m", "leedl_cli.cli", "run", *args, f"output_root={tmp_path / 'a'}"],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    metrics = None
    while proc.poll() is None and time.time() < deadline:
        found = list((tmp_path / "a").glob("runs/*/*/metrics.csv"))
        if found and epochs_logged(found[0]) >= 3:
            metrics = found[0]
            break
        time.sleep(0.05)
    time.sleep(0.2)   # into the fourth epoch; the checkpoint of the second is surely on disk
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert metrics is not None, "the run ended before it could be killed"
    run_dir = metrics.parent
    killed = json.loads((run_dir / "results.json").read_text())
    assert killed["status"] == "running", "killed mid-run: results.json still says running (and is whole JSON)"

    out = leedl("run", "resume=auto", *args, f"output_root={tmp_path / 'a'}")
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"continuing {run_dir}" in out.stderr
    assert [p.parent for p in (tmp_path / "a").glob("runs/*/*/results.json")] == [run_dir], "same run directory"
    resumed = json.loads((run_dir / "results.json").read_text())
    assert resumed["status"] == "ok" and resumed["seed"] == 3
    assert resumed["resumed"][0]["previous_status"] == "running" and resumed["resumed"][0]["from_epoch"] >= 1

    full = leedl("run", *args, f"output_root={tmp_path / 'b'}")
    assert full.returncode == 0, full.stderr[-2000:]
    (full_dir,) = [p.parent for p in (tmp_path / "b").glob("runs/*/*/results.json")]
    uninterrupted = json.loads((full_dir / "results.json").read_text())
    assert abs(resumed["metrics"]["test/acc"] - uninterrupted["metrics"]["test/acc"]) <= 0.001
    assert resumed["metrics"]["val/loss"] == pytest.approx(uninterrupted["metrics"]["val/loss"], rel=1e-4)
    # metrics.csv: the cut-short epoch's rows were dropped, the resumed ones appended: same curves
    assert (run_dir / "metrics.csv").read_text() == (full_dir / "metrics.csv").read_text()


def test_resume_refuses_what_it_cannot_continue(tmp_path):
    out = leedl("run", f"resume={tmp_path / 'nope'}")
    assert out.returncode == 2 and "not a leedl run directory" in out.stderr
    out = leedl("run", "-m", "seed=0,1", f"resume={tmp_path}")
    assert out.returncode == 2 and "skip_done=true" in out.stderr
    done = tmp_path / "done"
    done.mkdir()
    (done / "results.json").write_text(json.dumps({"status": "ok", "overrides": []}))
    out = leedl("run", f"resume={done}")
    assert out.returncode == 2 and "already finished" in out.stderr
    assert json.loads((done / "results.json").read_text()) == {"status": "ok", "overrides": []}, "left untouched"


def test_ddp_sim_one_directory_per_run_single_and_multirun(tmp_path):
    common = ["trainer=ddp_sim", "model=mlp", "trainer.max_epochs=1", *QUIET]
    single = leedl("run", *common, "seed=0", f"output_root={tmp_path / 's'}")
    assert single.returncode == 0, single.stderr[-2000:]
    runs = list((tmp_path / "s" / "runs").glob("*/*"))
    assert len(runs) == 1, runs
    (res,) = results_under(tmp_path / "s")
    assert res["status"] == "ok" and res["metrics"]["test/acc"] > 0.5
    assert not list(runs[0].glob(".ddp_worker_config.yaml")), "the worker config is cleaned up"

    sweep = leedl("run", "-m", *common, "seed=0,1", f"output_root={tmp_path / 'm'}")
    assert sweep.returncode == 0, sweep.stderr[-2000:]
    assert not (tmp_path / "m" / "runs").exists(), "DDP processes must not make run directories of their own"
    jobs = sorted(p.name for p in (tmp_path / "m" / "multirun").glob("*/*/*") if p.is_dir())
    assert jobs == ["0", "1"]
    results = results_under(tmp_path / "m")
    assert [r["seed"] for r in results] == [0, 1] and all(r["status"] == "ok" for r in results)


def test_joblib_sweep_splits_the_cores(tmp_path):
    out = leedl("run", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "debug=smoke", "model=mlp",
                "seed=0,1", *QUIET, f"output_root={tmp_path}")
    assert out.returncode == 0, out.stderr[-2000:]
    results = results_under(tmp_path)
    assert len(results) == 2 and all(r["status"] == "ok" for r in results)
    assert len({r["pid"] for r in results}) == 2, "two worker processes"
    assert all(r["threads"] == max(1, (os.cpu_count() or 1) // 2) for r in results)


def test_sweep_survives_a_failing_job_and_reruns_only_what_did_not_finish(tmp_path):
    # Adam refuses beta1 = 2 when it is built: a job that passes the config check and fails when it runs
    sweep = ["run", "-m", "debug=smoke", "model=mlp", "optimizer.betas=[0.9,0.999],[2.0,0.999]", *QUIET,
             f"output_root={tmp_path}"]
    first = leedl(*sweep)
    assert first.returncode == 1 and "1 of 2 jobs failed" in first.stderr
    (first_dir,) = list((tmp_path / "multirun").glob("*/*"))
    ok, failed = (json.loads((first_dir / j / "results.json").read_text()) for j in ("0", "1"))
    assert ok["status"] == "ok" and failed["status"] == "failed" and failed["error"].startswith("ValueError")

    time.sleep(1.1)   # a new sweep directory (its name has the time to the second, and a random id anyway)
    second = leedl(*sweep, "skip_done=true")
    assert second.returncode == 1
    (second_dir,) = [d for d in (tmp_path / "multirun").glob("*/*") if d != first_dir]
    skipped, rerun = (json.loads((second_dir / j / "results.json").read_text()) for j in ("0", "1"))
    assert skipped["skipped"] is True and Path(skipped["done_in"]) == first_dir / "0"
    assert not (second_dir / "0" / "metrics.csv").exists(), "a done job is not trained again"
    assert not rerun.get("skipped") and rerun["status"] == "failed" and rerun["started"] != failed["started"]

    rep = leedl("report", str(tmp_path / "multirun"), "--no-plots")
    assert rep.returncode == 0
    md = (tmp_path / "multirun" / "report.md").read_text()
    assert "did not finish ok" in md
    (ok_row,) = [line for line in md.splitlines() if "optimizer.betas=[0.9,0.999]" in line]
    assert ok_row.split("|")[2:5] == [" 1 ", " 1 ", " 0 "], "the ok job is counted once, not once per sweep"
    (failed_row,) = [line for line in md.splitlines() if "optimizer.betas=[2.0,0.999]" in line]
    assert failed_row.split("|")[2] == " 2 ", "both failed attempts are listed"


def test_optuna_sweep_returns_the_metric_it_optimises(tmp_path):
    out = leedl("run", "-m", "experiment=hpo_digits", "hydra.sweeper.n_trials=2", "debug=smoke", *QUIET,
                f"output_root={tmp_path}")
    assert out.returncode == 0, out.stderr[-2000:]
    (best_file,) = list(tmp_path.glob("multirun/*/*/optimization_results.yaml"))
    best = best_file.read_text()
    vals = [r["metrics"]["val/acc"] for r in results_under(tmp_path)]
    assert len(vals) == 2
    assert f"best_value: {max(vals)}" in best and "optimizer.lr" in best and "optimizer.weight_decay" in best
