"""`leedl report` on folders that are not a tidy sweep: read-only, several tasks, files that are no run record,
runs still going or killed, an unknown metric; and its plots and one-run groups say no more than was measured."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import pytest

from leedl_cli.report import cli as report_cli
from leedl_cli.report import report_main
from leedl_cli.report.runs import fmt, load_runs


def write_run(folder: Path, **record) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    run = {"status": "ok", "seed": 0, "overrides": [], "metrics": {}, **record}
    (folder / "results.json").write_text(json.dumps(run))
    return folder


def two_runs(root: Path) -> Path:
    for i, acc in enumerate((0.91, 0.93)):
        write_run(root / str(i), task="digits", seed=i, overrides=["optimizer=adam", f"seed={i}"],
                  metrics={"test/acc": acc, "test/loss": 0.3})
    return root


def test_a_folder_that_cannot_be_written_still_gets_its_table(tmp_path, monkeypatch, capsys):
    sweep = two_runs(tmp_path / "sweep")
    real = report_cli.unwritable
    monkeypatch.setattr(report_cli, "unwritable",
                        lambda folder: f"{folder} is not writable (Read-only file system)" if folder == sweep
                        else real(folder))
    assert report_main([str(sweep)]) == 0
    out = capsys.readouterr().out
    assert "optimizer=adam" in out and "0.9200 ± 0.0141" in out
    (line,) = [line for line in out.splitlines() if "not written" in line]
    assert "Read-only file system" in line and "--out" in line
    assert sorted(p.name for p in sweep.iterdir()) == ["0", "1"], "nothing written into the folder read"
    out_dir = tmp_path / "elsewhere"
    assert report_main([str(sweep), "--out", str(out_dir)]) == 0
    assert {"report.md", "report.csv"} <= {p.name for p in out_dir.iterdir()}
    assert "0.9200 ± 0.0141" in (out_dir / "report.md").read_text()
    assert sorted(p.name for p in sweep.iterdir()) == ["0", "1"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_by_its_permissions(tmp_path, capsys):
    sweep = two_runs(tmp_path / "sweep")
    sweep.chmod(0o555)
    try:
        assert report_main([str(sweep), "--no-plots"]) == 0
        assert "not written" in capsys.readouterr().out
    finally:
        sweep.chmod(0o755)


def test_an_unknown_metric_exits_2_listing_the_metrics_present_and_writes_nothing(tmp_path, capsys):
    sweep = two_runs(tmp_path / "sweep")
    assert report_main([str(sweep), "--metric", "test/acc", "--metric", "test/accuracy"]) == 2
    err = capsys.readouterr().err
    assert "test/accuracy" in err and "metrics present: test/acc, test/loss" in err
    assert len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in sweep.iterdir()) == ["0", "1"]


def test_runs_of_several_tasks_get_a_table_each_with_their_own_columns(tmp_path, capsys):
    root = tmp_path / "mixed"
    for i in range(2):
        write_run(root / f"qa{i}", task="bert_squad", seed=i, overrides=["task=bert_squad", f"seed={i}"],
                  metrics={"test/f1": 50.0 + i, "test/em": 40.0 + i})
        write_run(root / f"cls{i}", task="sentiment", seed=i, overrides=["task=sentiment", f"seed={i}"],
                  metrics={"test/acc": 0.8 + i / 100})
    assert report_main([str(root), "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert "task=bert_squad" in out and "task=sentiment" in out
    md = (root / "report.md").read_text()
    sections = {part.split("\n", 1)[0]: part for part in md.split("## task=")[1:]}
    qa, cls = sections["bert_squad"], sections["sentiment"]
    assert "| test/em | test/f1 |" in qa and "test/acc" not in qa
    assert "| task=bert_squad | 2 | 2 | 0 | 0 | 40.50 ± 0.71 | 50.50 ± 0.71 | — |" in qa
    assert "| test/acc |" in cls and "test/f1" not in cls
    assert "| task=sentiment | 2 | 2 | 0 | 0 | 0.8050 ± 0.0071 | — |" in cls
    rows = (root / "report.csv").read_text().splitlines()
    assert rows[0].startswith("task,group,runs,ok,") and len(rows) == 3


def test_a_results_json_that_is_no_run_record_is_listed_as_unreadable(tmp_path, capsys):
    root = two_runs(tmp_path / "sweep")
    for name, text in (("list", "[1, 2, 3]"), ("nostatus", '{"metrics": {"test/acc": 1}}'), ("cut", '{"status": "o')):
        (root / name).mkdir()
        (root / name / "results.json").write_text(text)
    assert report_main([str(root), "--no-plots"]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    md = (root / "report.md").read_text()
    assert md.count("**unreadable**") == 3 and "holds a list" in md and "no status" in md
    assert "| optimizer=adam | 2 | 2 |" in md, "the records that are runs are grouped as before"


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_running_and_killed_runs_are_shown_as_such_not_as_failed(tmp_path):
    root = tmp_path / "sweep"
    here = platform.node()
    write_run(root / "live", status="running", pid=os.getpid(), host=here, overrides=["m=a"])
    write_run(root / "dead", status="running", pid=dead_pid(), host=here, overrides=["m=a"])
    elsewhere = write_run(root / "far_old", status="running", pid=1, host="another-host", overrides=["m=a"])
    old = time.time() - 3600
    os.utime(elsewhere / "results.json", (old, old))
    write_run(root / "far_new", status="running", pid=1, host="another-host", overrides=["m=a"])
    locked = write_run(root / "lock_gone", status="running", pid=os.getpid(), host=here, overrides=["m=a"])
    (locked / ".leedl.lock").write_text("12345")   # nobody holds it: the run ended without recording how
    status = {Path(r["_dir"]).name: r["status"] for r in load_runs(root)}
    assert status == {"live": "running", "dead": "killed", "far_old": "killed", "far_new": "running",
                      "lock_gone": "killed"}
    from leedl_cli.report.runs import summarize

    (row,) = summarize(load_runs(root), [])
    assert (row["failed"], row["running"], row["killed"], row["other"]) == (0, 2, 3, "2 running, 3 killed")


def test_one_run_is_its_value_alone():
    assert fmt(0.98, 0.0, 1) == "0.9800 (n=1)"
    assert fmt(0.98, 0.01, 3) == "0.9800 ± 0.0100 (n=3)"
    assert fmt(2e-4, None) == "0.0002"


def test_a_group_of_one_run_prints_no_spread(tmp_path, capsys):
    write_run(tmp_path / "s" / "0", overrides=["optimizer=sgd"], metrics={"test/acc": 0.75})
    assert report_main([str(tmp_path / "s"), "--no-plots"]) == 0
    assert "0.7500" in capsys.readouterr().out
    md = (tmp_path / "s" / "report.md").read_text()
    assert "| optimizer=sgd | 1 | 1 | 0 | 0 | 0.7500 |" in md and "±" not in md
