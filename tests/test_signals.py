"""SIGTERM / SIGINT / SIGUSR1: a checkpoint of the current state, status interrupted, exit 128 + signal, resumable.

Through the `leedl` command in subprocesses, as SLURM, Kubernetes, `docker stop` or Ctrl-C would do it.
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

pytestmark = pytest.mark.slow   # signals sent to `leedl` subprocesses

REPO = Path(__file__).resolve().parents[1]
QUIET = ["logger=csv", "trainer.enable_progress_bar=false"]


def leedl(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, WANDB_MODE="offline")
    return subprocess.run([sys.executable, "-m", "leedl_cli.cli", *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=timeout)


def rows(metrics_csv: Path) -> int:
    return max(0, len(metrics_csv.read_text().splitlines()) - 1) if metrics_csv.is_file() else 0


def start_and_signal(args: list[str], root: Path, sig: int, after_rows: int = 4):
    """Start `leedl run ARGS`, send `sig` once metrics.csv has some rows; (return code, run dir)."""
    proc = subprocess.Popen([sys.executable, "-m", "leedl_cli.cli", "run", *args, f"output_root={root}"],
                            cwd=REPO, env=dict(os.environ, WANDB_MODE="offline"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    metrics = None
    while proc.poll() is None and time.time() < deadline:
        found = list(root.glob("runs/*/*/metrics.csv"))
        if found and rows(found[0]) >= after_rows:
            metrics = found[0]
            break
        time.sleep(0.02)
    assert metrics is not None, "the run ended before it could be signalled"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, metrics.parent, err


@pytest.mark.parametrize("sig", [signal.SIGTERM])
def test_signalled_run_is_interrupted_and_resumes_to_the_same_result(tmp_path, sig):
    # digits + cnn (dropout: the random state matters), 4 epochs of 40 updates; log every step to see progress
    args = ["trainer.max_epochs=4", "seed=5", "trainer.deterministic=true", "trainer.log_every_n_steps=1", *QUIET]
    code, run_dir, err = start_and_signal(args, tmp_path / "a", sig, after_rows=50)
    assert code == 128 + sig, err[-2000:]
    stopped = json.loads((run_dir / "results.json").read_text())
    assert stopped["status"] == "interrupted" and stopped["signal"] == signal.Signals(sig).name
    assert stopped["interrupted_at_step"] > 0
    assert stopped["interrupted_checkpoint"].endswith("last.ckpt") and (run_dir / "checkpoints/last.ckpt").is_file()

    out = leedl("run", "resume=auto", *args, f"output_root={tmp_path / 'a'}")
    assert out.returncode == 0, out.stderr[-2000:]
    resumed = json.loads((run_dir / "results.json").read_text())
    assert resumed["status"] == "ok" and resumed["resumed"][0]["previous_status"] == "interrupted"
    assert resumed["resumed"][0]["from_step"] == stopped["interrupted_at_step"]

    full = leedl("run", *args, f"output_root={tmp_path / 'b'}")
    assert full.returncode == 0, full.stderr[-2000:]
    (full_dir,) = [p.parent for p in (tmp_path / "b").glob("runs/*/*/results.json")]
    uninterrupted = json.loads((full_dir / "results.json").read_text())
    for key in ("test/acc", "test/loss", "val/loss", "train/acc", "train/loss"):
        assert resumed["metrics"][key] == pytest.approx(uninterrupted["metrics"][key], rel=1e-6), key
    assert (run_dir / "metrics.csv").read_text() == (full_dir / "metrics.csv").read_text()


def test_signal_stops_a_sweep_after_recording_its_job(tmp_path):
    args = ["-m", "trainer.max_epochs=50", "seed=0,1,2", "trainer.log_every_n_steps=1", *QUIET]
    proc = subprocess.Popen([sys.executable, "-m", "leedl_cli.cli", "run", *args, f"output_root={tmp_path}"],
                            cwd=REPO, env=dict(os.environ, WANDB_MODE="offline"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while proc.poll() is None and time.time() < deadline:
        found = list(tmp_path.glob("multirun/*/*/0/metrics.csv"))
        if found and rows(found[0]) >= 5:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGUSR1)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGUSR1, err[-2000:]
    results = [json.loads(p.read_text()) for p in tmp_path.glob("multirun/*/*/*/results.json")]
    assert [r["status"] for r in results] == ["interrupted"], "the sweep stopped after its current job"
    assert results[0]["signal"] == "SIGUSR1"


def test_jobs_of_a_parallel_sweep_stop_when_the_sweep_process_is_killed(tmp_path):
    """`kill -9` of a joblib sweep leaves its workers without a parent: each stops itself (checkpoint, status
    interrupted) instead of training on unwatched."""
    args = ["-m", "trainer.max_epochs=200", "seed=0,1", "trainer.log_every_n_steps=1", "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2", "threads=1", *QUIET]
    proc = subprocess.Popen([sys.executable, "-m", "leedl_cli.cli", "run", *args, f"output_root={tmp_path}"],
                            cwd=REPO, env=dict(os.environ, WANDB_MODE="offline"), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while proc.poll() is None and time.time() < deadline:
        found = list(tmp_path.glob("multirun/*/*/*/metrics.csv"))
        if len(found) == 2 and min(rows(f) for f in found) >= 5:
            break
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    deadline = time.time() + 120
    statuses: list[str] = []
    while time.time() < deadline:
        results = [json.loads(p.read_text()) for p in tmp_path.glob("multirun/*/*/*/results.json")]
        statuses = sorted(r["status"] for r in results)
        if statuses and "running" not in statuses:
            break
        time.sleep(0.5)
    try:
        assert statuses == ["interrupted", "interrupted"], statuses
        assert all(r["signal"] == "SIGTERM" for r in results)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)   # whatever is left of the sweep's workers
        except ProcessLookupError:
            pass
