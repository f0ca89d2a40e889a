"""The `leedl` command in subprocesses, as a user types it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def leedl(*args: str, cwd: Path | None = None, timeout: int = 240) -> subprocess.CompletedProcess:
    env = dict(os.environ, WANDB_MODE="offline", HYDRA_FULL_ERROR="0")
    return subprocess.run([sys.executable, "-m", "leedl_cli.cli", *args], capture_output=True, text=True,
                          cwd=cwd or REPO, env=env, timeout=timeout)


def test_help_list_and_data_import_no_torch():
    code = ("import sys; from leedl_cli.cli import main; main(['--help']); main(['list']); main(['data', 'list']);"
            "heavy = [m for m in ('torch', 'pytorch_lightning', 'transformers') if m in sys.modules];"
            "assert not heavy, heavy")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert "leedl run" in out.stdout and "optimizer:" in out.stdout and "mnist" in out.stdout


@pytest.mark.parametrize("args", [["--help"], ["list"]])
def test_output_into_a_closed_pipe_stops_quietly(args):
    read_end, write_end = os.pipe()
    os.close(read_end)   # the reader (`| head -1`) is gone before leedl writes
    try:
        out = subprocess.run([sys.executable, "-m", "leedl_cli.cli", *args], stdout=write_end, stderr=subprocess.PIPE,
                             text=True, cwd=REPO)
    finally:
        os.close(write_end)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr


def test_list_shows_one_line_per_option_with_its_description():
    out = leedl("list", "optimizer")
    assert out.returncode == 0
    lines = {line.split()[0]: line for line in out.stdout.splitlines()[1:]}
    assert set(lines) >= {"sgd", "momentum", "adagrad", "rmsprop", "adam", "adamw"}
    assert "alpha" in lines["rmsprop"]


def test_unknown_group_and_command_are_clear_errors():
    out = leedl("list", "optimiser")
    assert out.returncode == 2 and "valid groups" in out.stderr and "optimizer" in out.stderr
    out = leedl("train")
    assert out.returncode == 2 and "valid commands" in out.stderr


@pytest.mark.slow
def test_unknown_option_lists_the_valid_ones(tmp_path):
    out = leedl("run", "optimizer=adamm", f"output_root={tmp_path}")
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert "adamm" in text and "adagrad" in text and "rmsprop" in text
    assert "Traceback" not in text
    assert not list(tmp_path.rglob("results.json")), "nothing was run"


@pytest.mark.slow
def test_missing_data_fails_with_a_short_message(tmp_path):
    out = leedl("run", "task=mnist", "debug=smoke", f"data_dir={tmp_path}/none", "task.data.download=false",
                f"output_root={tmp_path}/out")
    assert out.returncode == 1
    assert "MNIST not found" in out.stderr and "LEEDL_DATA_DIR" in out.stderr
    assert "Traceback" not in out.stderr
    (result,) = list((tmp_path / "out").rglob("results.json"))
    assert json.loads(result.read_text())["status"] == "failed"


@pytest.mark.slow
def test_multirun_then_report(tmp_path):
    out = leedl("run", "-m", "debug=smoke", "model=mlp,cnn", "seed=0,1", f"output_root={tmp_path}")
    assert out.returncode == 0, out.stderr[-2000:]
    (sweep,) = list((tmp_path / "multirun").glob("*/*"))
    job_dirs = sorted(p.parent for p in sweep.rglob("results.json"))
    assert len(job_dirs) == 4 and len(set(job_dirs)) == 4
    rep = leedl("report", str(sweep))
    assert rep.returncode == 0, rep.stderr
    assert "model=mlp" in rep.stdout and "model=cnn" in rep.stdout
    md = (sweep / "report.md").read_text()
    assert "± " in md and "| debug=smoke model=cnn | 2 | 2 |" in md
    csv_text = (sweep / "report.csv").read_text()
    assert csv_text.count("\n") == 3
    assert list((sweep / "report_plots").glob("*.png"))


def test_report_on_missing_path_is_an_error(tmp_path):
    out = leedl("report", str(tmp_path / "nope"))
    assert out.returncode == 2 and "does not exist" in out.stderr


@pytest.mark.slow
def test_wheel_install_finds_conf_from_another_directory(tmp_path):
    """`pip install .` into a fresh venv, then `leedl list` from elsewhere finds the packaged conf/."""
    import zipfile

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path / "dist"), str(REPO)], check=True, cwd=tmp_path)   # hatchling: a dev tool
    (wheel,) = (tmp_path / "dist").glob("leedl-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "leedl_cli/conf/config.yaml" in names and "leedl_cli/data/ambiguous_words.tsv" in names
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    subprocess.run([venv / "bin" / "pip", "install", "-q", "--no-deps", str(wheel)], check=True, cwd=tmp_path)
    out = subprocess.run([venv / "bin" / "leedl", "list", "task"], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0 and "digits" in out.stdout and "contextual_embeddings" in out.stdout
