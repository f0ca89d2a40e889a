"""How `leedl run` ends: its exit status and the numbers it prints come from the results.json files its runs wrote
(in the run or sweep directory the command fixed before Hydra started), not from variables in memory."""
from __future__ import annotations

import json
import os
import sys
import time
import types
from pathlib import Path

import pytest

import leedl_cli
from leedl_cli import cli
from leedl_cli import preflight as pf
from leedl_cli.report.outcome import end_of_run, fix_output_dir


def rec(status="ok", name="0", **extra) -> dict:
    return {"status": status, "_dir": Path("/s") / name, "metrics": {"test/acc": 0.912345, "test/loss": 0.3,
                                                                     "val/acc": 0.9}, **extra}


def test_end_of_a_single_run_prints_its_test_metrics_or_its_error():
    code, out, err = end_of_run([rec()], False, Path("/s/0"))
    assert (code, err) == (0, []) and out == ["run ok: test/acc 0.9123  test/loss 0.3000  (/s/0)"]
    code, out, err = end_of_run([rec("diverged", metrics={})], False, None)
    assert code == 0 and out == ["run diverged: no test metrics recorded  (/s/0)"]
    code, out, err = end_of_run([rec("failed", error="ValueError: boom")], False, None)
    assert code == 1 and out == [] and err == ["leedl run: failed: ValueError: boom", "  run directory: /s/0"]
    minimum_ratio = rec(metrics={}, minimum_ratio=0.75, report={"metrics": ["minimum_ratio"]})
    assert end_of_run([minimum_ratio], False, None)[1] == ["run ok: minimum_ratio 0.7500  (/s/0)"]
    assert end_of_run([], False, Path("/s/0"))[0] == 1


def test_end_of_a_sweep_lists_each_job_and_counts_the_ones_that_did_not_end_ok():
    runs = [rec(name="0"), rec("failed", name="1", metrics={}), rec(name="2", skipped=True)]
    code, out, err = end_of_run(runs, True, Path("/s"))
    assert code == 1 and err == ["leedl run: 1 of 3 jobs failed (see `leedl report /s`)"]
    assert out[0].split() == ["job", "status", "test/acc", "test/loss"]
    assert out[1].split() == ["0", "ok", "0.9123", "0.3000"] and out[2].split() == ["1", "failed", "—", "—"]
    assert out[3].startswith("2    ok (skipped: done before)")
    code, _, err = end_of_run([rec(name="0"), rec("killed", name="1")], True, Path("/s"))
    assert code == 1 and err == ["leedl run: 1 of 2 jobs did not end ok (1 killed) (see `leedl report /s`)"]


def test_the_run_directory_is_fixed_from_the_composed_config(tmp_path):
    base = pf._compose([f"output_root={tmp_path}"])
    args, where = fix_output_dir([f"output_root={tmp_path}"], base, False)
    assert where.parent.parent == tmp_path / "runs" and args[-1] == f"hydra.run.dir='{where}'"
    args, where = fix_output_dir(["-m", "seed=0,1"], base, True)
    assert where.parent.parent == tmp_path / "multirun" and args[-1].startswith("hydra.sweep.dir=")
    given = ["hydra.run.dir=/tmp/x"]
    assert fix_output_dir(given, base, False) == (given, Path("/tmp/x"))


def fake_run(monkeypatch, write) -> None:
    """`leedl_cli.run` replaced by a main() that writes records where the command line says, like Hydra would."""
    def main():
        args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
        write({k: Path(v.strip("'")) for k, v in args.items() if k in ("hydra.run.dir", "hydra.sweep.dir")})

    fake = types.ModuleType("leedl_cli.run")
    fake.main, fake.JOB_STATUSES, fake.LAST_RESULTS = main, ["failed"], {"status": "failed"}   # ignored
    monkeypatch.setitem(sys.modules, "leedl_cli.run", fake)
    monkeypatch.setattr(leedl_cli, "run", fake, raising=False)
    monkeypatch.setattr(pf, "preflight", lambda args: pf._compose([a for a in args if a != "-m" and "," not in a]))


def record(folder: Path, **run) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps({"overrides": [], "pid": os.getpid(), **run}))


def test_leedl_run_exit_status_and_numbers_come_from_the_record(tmp_path, monkeypatch, capsys):
    from leedl_cli.rundirs import release

    fake_run(monkeypatch, lambda d: record(d["hydra.run.dir"], status="ok", metrics={"test/acc": 0.5}))
    assert cli.cmd_run([f"output_root={tmp_path}"]) == 0
    (run_dir,) = [p.parent for p in tmp_path.rglob("results.json")]
    release(run_dir)
    assert capsys.readouterr().out.strip() == f"run ok: test/acc 0.5000  ({run_dir})"
    fake_run(monkeypatch, lambda d: record(d["hydra.run.dir"], status="failed", error="ValueError: boom"))
    assert cli.cmd_run([f"output_root={tmp_path / 'b'}"]) == 1
    release(next((tmp_path / "b").rglob("results.json")).parent)
    assert "leedl run: failed: ValueError: boom" in capsys.readouterr().err


def test_a_continued_sweep_counts_only_the_jobs_of_this_command(tmp_path, monkeypatch, capsys):
    sweep = tmp_path / "sweep"
    record(sweep / "0", status="failed", error="earlier attempt")
    old = time.time() - 600
    os.utime(sweep / "0" / "results.json", (old, old))

    def write(d):
        record(d["hydra.sweep.dir"] / "0_a1b2", status="ok", metrics={"test/acc": 0.7})
        record(d["hydra.sweep.dir"] / "1", status="ok", metrics={"test/acc": 0.8})

    fake_run(monkeypatch, write)
    assert cli.cmd_run(["-m", "seed=0,1", f"hydra.sweep.dir={sweep}", "skip_done=true"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[:3] for line in out[1:]] == [["1", "ok", "0.8000"], ["0_a1b2", "ok", "0.7000"]]


@pytest.mark.slow
def test_a_csv_logged_run_ends_with_its_test_metrics(tmp_path):
    import subprocess

    env = dict(os.environ, WANDB_MODE="offline")
    out = subprocess.run([sys.executable, "-m", "leedl_cli.cli", "run", "debug=smoke", "logger=csv", "threads=1",
                          f"output_root={tmp_path}"], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    (run_dir,) = [p.parent for p in tmp_path.rglob("results.json")]
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith("run ok: test/") and "test/acc " in last and last.endswith(f"({run_dir})")
