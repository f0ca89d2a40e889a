"""No run directory is reused silently, resume says what it changed, a full disk loses nothing, the first minutes
go smoothly. In-process where it can be (fast tier); through the `leedl` command in subprocesses otherwise
(slow tier)."""
from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
QUIET = ["logger=csv", "trainer.enable_progress_bar=false", "threads=1"]


def leedl_main(*args: str) -> int:
    from leedl_cli.cli import main

    try:
        return main(list(args)) or 0
    except SystemExit as exc:
        return int(exc.code or 0)


# ---- a directory that holds a run is never written by another run -----------------------------------------
def test_a_second_run_into_a_directory_that_holds_one_is_refused(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    earlier = {"status": "ok", "overrides": [], "metrics": {"test/acc": 0.9}}
    (run_dir / "results.json").write_text(json.dumps(earlier))
    code = leedl_main("run", "debug=smoke", f"hydra.run.dir={run_dir}")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "already holds a run" in err[0] and "resume=" in err[0]
    assert json.loads((run_dir / "results.json").read_text()) == earlier
    assert not (run_dir / ".hydra").exists(), "nothing was written into the earlier run's directory"


@pytest.mark.slow
def test_a_run_aimed_at_a_directory_another_process_is_writing_is_refused(tmp_path, capsys):
    run_dir = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from leedl_cli.rundirs import hold; "
                               f"hold({str(run_dir)!r}); print('held', flush=True); time.sleep(60)"],
                              cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code = leedl_main("run", "debug=smoke", f"hydra.run.dir={run_dir}")
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and "being written by another run" in err[0], err
        assert not (run_dir / "results.json").exists() and not (run_dir / ".hydra").exists()
    finally:
        holder.kill()
        holder.wait()
    from leedl_cli.rundirs import is_locked

    assert not is_locked(run_dir), "a killed process's lock goes with it"


def test_a_sweep_directory_that_holds_jobs_is_continued_only_with_skip_done(tmp_path):
    from leedl_cli.errors import LeedlError
    from leedl_cli.rundirs import claim_directories

    sweep = tmp_path / "sweep"
    (sweep / "0").mkdir(parents=True)
    (sweep / "0" / "results.json").write_text(json.dumps({"status": "ok", "overrides": ["seed=0"]}))
    (sweep / "multirun.yaml").write_text("first sweep\n")
    args = ["-m", "seed=0,1", f"hydra.sweep.dir={sweep}"]
    with pytest.raises(LeedlError, match="already holds 1 job.*skip_done=true"):
        claim_directories(args)
    continued = claim_directories([*args, "skip_done=true"])
    assert continued[-1] == "hydra.sweep.subdir=${hydra.job.num}_${leedl_uid:}", "fresh job directories"
    kept = list(sweep.glob("multirun.*.yaml"))
    assert len(kept) == 1 and kept[0].read_text() == "first sweep\n", "the earlier multirun.yaml is kept"
    assert json.loads((sweep / "0" / "results.json").read_text())["status"] == "ok"


@pytest.mark.slow
def test_a_continued_sweep_skips_its_done_jobs_and_counts_its_own(tmp_path):
    env = dict(os.environ, WANDB_MODE="offline")
    sweep = tmp_path / "sweep"
    common = ["-m", "debug=smoke", "model=mlp", *QUIET, f"hydra.sweep.dir={sweep}"]
    first = subprocess.run([sys.executable, "-m", "leedl_cli.cli", "run", *common, "seed=0"], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    again = subprocess.run([sys.executable, "-m", "leedl_cli.cli", "run", *common, "seed=0"], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "skip_done=true" in again.stderr
    cont = subprocess.run([sys.executable, "-m", "leedl_cli.cli", "run", *common, "seed=0,1", "skip_done=true"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert cont.returncode == 0, cont.stderr[-2000:]
    records = {p.parent.name: json.loads(p.read_text()) for p in sweep.glob("*/results.json")}
    assert records["0"]["status"] == "ok" and not records["0"].get("skipped"), "the first job is untouched"
    new = {k: v for k, v in records.items() if k != "0"}
    assert len(new) == 2 and sum(bool(r.get("skipped")) for r in new.values()) == 1
    assert all("_" in k for k in new), "the continued sweep's jobs get fresh directories"


# ---- resume says what it changed -----------------------------------------------------------------------------
def test_resume_refuses_overrides_that_change_the_job(tmp_path):
    from leedl_cli.errors import LeedlError
    from leedl_cli.resume import resume_overrides

    (tmp_path / "results.json").write_text(json.dumps({"status": "running", "overrides": ["trainer.max_epochs=30"]}))
    with pytest.raises(LeedlError, match="model, optimizer.lr would change what the run computes"):
        resume_overrides(tmp_path, ["optimizer.lr=0.05", "model=mlp", "trainer.max_epochs=35"])
    kept = resume_overrides(tmp_path, ["trainer.max_epochs=35", "threads=1"])
    assert "trainer.max_epochs=35" in kept and "trainer.max_epochs=30" not in kept


@pytest.mark.slow
def test_a_resumed_run_records_the_length_it_was_given(tmp_path):
    import signal

    env = dict(os.environ, WANDB_MODE="offline")
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "leedl_cli.cli", "run", "trainer.max_epochs=60", "seed=0", *QUIET,
                             f"hydra.run.dir={run_dir}"], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while proc.poll() is None and time.time() < deadline and not (run_dir / "checkpoints" / "last.ckpt").is_file():
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    assert json.loads((run_dir / "results.json").read_text())["status"] == "interrupted"
    refused = subprocess.run([sys.executable, "-m", "leedl_cli.cli", "run", f"resume={run_dir}", "optimizer.lr=0.05"],
                             cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "optimizer.lr would change what the run computes" in refused.stderr
    res = subprocess.run([sys.executable, "-m", "leedl_cli.cli", "run", f"resume={run_dir}", "trainer.max_epochs=3"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    resumed = json.loads((run_dir / "results.json").read_text())
    assert resumed["status"] == "ok" and resumed["resumed_with"] == ["trainer.max_epochs=3"]
    assert "trainer.max_epochs=3" in resumed["overrides"] and "trainer.max_epochs=60" not in resumed["overrides"]
    assert "max_epochs: 3" in (run_dir / ".hydra" / "config.yaml").read_text()


def test_a_damaged_last_checkpoint_falls_back_to_the_newest_readable_one(tmp_path, caplog):
    from leedl_cli.errors import LeedlError
    from leedl_cli.record import readable_checkpoint

    folder = tmp_path / "checkpoints"
    folder.mkdir()
    torch.save({"epoch": 3, "global_step": 40, "state_dict": {}, "optimizer_states": [{}]}, folder / "epoch003.ckpt")
    torch.save({"epoch": 4, "global_step": 50, "state_dict": {}, "optimizer_states": [{}]}, folder / "last.ckpt")
    data = (folder / "last.ckpt").read_bytes()
    (folder / "last.ckpt").write_bytes(data[: len(data) // 2])   # cut short
    path, ckpt = readable_checkpoint(folder)
    assert path.name == "epoch003.ckpt" and ckpt["epoch"] == 3
    assert "last.ckpt" in caplog.text and "continuing from epoch003.ckpt" in caplog.text
    (folder / "epoch003.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(LeedlError, match="no readable checkpoint"):
        readable_checkpoint(folder)


# ---- a full disk loses nothing ------------------------------------------------------------------------------
def test_a_full_disk_fails_the_run_in_one_line_and_leaves_earlier_files_whole(tmp_path, monkeypatch, run_leedl):
    import leedl_cli.checkpoint_io as cio
    from leedl_cli.atomic import replace_atomically

    real, saves = cio.torch_save_atomic, []

    def fills_up(obj, path):
        saves.append(Path(path).name)
        if len(saves) <= 2:
            return real(obj, path)

        def write(f):
            f.write(b"\0" * 1000)   # a part of it, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return replace_atomically(path, write, binary=True)

    monkeypatch.setattr(cio, "torch_save_atomic", fills_up)
    res = run_leedl(["model=mlp", "trainer.max_epochs=3", "seed=0", *QUIET])
    assert res["status"] == "failed" and res["error"].startswith("no space left on device"), res.get("error")
    assert "\n" not in res["error"]
    folder = tmp_path / "run" / "checkpoints"
    assert not list(folder.glob("*.tmp")) and not list(folder.glob(".*.tmp")), "no cut temporary file is left"
    for path in folder.glob("*.ckpt"):
        torch.load(path, weights_only=False)   # every checkpoint there is whole
    assert json.loads((tmp_path / "run" / "results.json").read_text())["status"] == "failed"


# ---- the first minutes -------------------------------------------------------------------------------------
def test_threads_above_the_cores_are_clamped_with_a_warning(caplog):
    from omegaconf import OmegaConf

    from leedl_cli.run import torch_threads

    before = torch.get_num_threads()
    try:
        torch_threads(OmegaConf.create({"threads": 10000}), torch)
        assert torch.get_num_threads() <= (os.cpu_count() or 1)
        assert "threads=10000 is more than this machine's" in caplog.text
    finally:
        torch.set_num_threads(before)


def test_data_check_exits_non_zero_when_a_data_set_is_missing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LEEDL_DATA_DIR", str(tmp_path))
    assert leedl_main("data", "check", "--task", "mnist") == 1
    assert "mnist" in capsys.readouterr().out
    assert leedl_main("data", "check", "--task", "digits") == 0   # bundled with scikit-learn
    assert leedl_main("data", "check", "--task", "nope") == 2


def test_the_readme_says_how_to_get_leedl_on_path_before_its_first_leedl_command():
    text = (REPO / "README.md").read_text()
    first_command = min(i for i, line in enumerate(text.splitlines()) if line.startswith("leedl "))
    before = "\n".join(text.splitlines()[:first_command])
    assert "source .venv/bin/activate" in before


def test_every_run_ends_by_printing_its_headline_test_metrics(tmp_path, capsys):
    assert leedl_main("run", "debug=smoke", "model=mlp", "logger=none", f"hydra.run.dir={tmp_path / 'r'}") == 0
    out = capsys.readouterr().out
    assert "run ok: test/loss" in out and "test/acc" in out, out[-500:]


def test_the_lock_is_released_when_the_run_ends(tmp_path, run_leedl):
    from leedl_cli.rundirs import is_locked

    res = run_leedl(["debug=smoke", "model=mlp", *QUIET])
    assert res["status"] == "ok" and not is_locked(tmp_path / "run")
    on_disk = sum(p.stat().st_size for p in (tmp_path / "run").rglob("*") if p.is_file())
    assert 0 < res["bytes"] <= on_disk, "results.json says the run's bytes"


def test_a_run_without_an_epoch_limit_stops_at_its_time_limit(run_leedl):
    """trainer.max_epochs=-1 (what the validator offers: no limit) with a max_time runs, and stops on time."""
    res = run_leedl(["model=mlp", "trainer.max_epochs=-1", "+trainer.max_time=00:00:00:03", "seed=0", *QUIET])
    assert res["status"] == "ok", res.get("error")
    assert res["timings"]["epochs"] >= 1 and res["metrics"]["test/acc"] > 0.5
