"""Each place leedl touches a private part of Lightning (leedl_cli.compat): fails loudly when an upgrade moves it."""
from __future__ import annotations

import csv

import pytest
import pytorch_lightning as pl

from leedl_cli import compat


def test_should_update_logs_follows_log_every_n_steps():
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, log_every_n_steps=3,
                         enable_progress_bar=False, enable_model_summary=False)
    assert hasattr(trainer._logger_connector, "should_update_logs"), "Lightning moved _LoggerConnector.should_update_logs"
    assert isinstance(compat.should_update_logs(trainer), bool)


def test_wandb_logger_keeps_its_run_in_experiment(tmp_path, monkeypatch):
    from pytorch_lightning.loggers import WandbLogger

    monkeypatch.setenv("WANDB_MODE", "offline")
    logger = WandbLogger(save_dir=str(tmp_path), offline=True)
    assert hasattr(logger, "_experiment"), "Lightning moved WandbLogger._experiment"
    assert compat.wandb_run_started(logger) is False   # reading .experiment would start a run


def test_subprocess_command_replaces_and_restores_the_ddp_launch_command():
    import pytorch_lightning.strategies.launchers.subprocess_script as launcher

    assert hasattr(launcher, "_hydra_subprocess_cmd") and hasattr(launcher, "_basic_subprocess_cmd"), \
        "Lightning moved the functions that build DDP children's command"
    before = (launcher._hydra_subprocess_cmd, launcher._basic_subprocess_cmd)
    with compat.subprocess_command(["python", "-m", "worker"]):
        assert launcher._basic_subprocess_cmd() == ["python", "-m", "worker"]
        assert launcher._hydra_subprocess_cmd(local_rank=1)[0] == ["python", "-m", "worker"]
    assert (launcher._hydra_subprocess_cmd, launcher._basic_subprocess_cmd) == before


def test_csv_writer_keeps_an_existing_file_and_rewrites_the_header(tmp_path):
    from pytorch_lightning.loggers.csv_logs import ExperimentWriter

    for name in ("_check_log_dir_exists", "_rewrite_with_new_header"):
        assert hasattr(ExperimentWriter, name), f"Lightning moved ExperimentWriter.{name}"
    (tmp_path / "metrics.csv").write_text("epoch,step,a\n0,1,0.5\n")
    writer = compat.AppendingExperimentWriter(str(tmp_path))
    assert writer.metrics_keys == ["epoch", "step", "a"]
    writer.log_metrics({"a": 0.25, "b": 1.0, "epoch": 1}, step=2)
    writer.save()
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert [r["a"] for r in rows] == ["0.5", "0.25"] and rows[1]["b"] == "1.0" and rows[0]["b"] == ""


def test_log_step_metrics_now_exists():
    from pytorch_lightning.trainer.connectors.logger_connector.logger_connector import _LoggerConnector

    assert hasattr(_LoggerConnector, "update_train_step_metrics"), "Lightning moved update_train_step_metrics"


def test_in_memory_loader_goes_on_where_it_stopped():
    import torch

    from leedl_cli.data.memory import InMemoryLoader

    loader = InMemoryLoader(torch.arange(10), batch_size=3, shuffle=True, seed=1)
    it = iter(loader)
    first = [next(it)[0] for _ in range(2)]
    state = loader.state_dict()
    again = InMemoryLoader(torch.arange(10), batch_size=3, shuffle=True, seed=1)
    again.load_state_dict(state)
    rest = [b[0] for b in again]
    assert torch.equal(torch.cat(first + rest).sort().values, torch.arange(10)), "the epoch goes on where it stopped"


def test_sigterm_exception_is_lightnings_stop():
    assert issubclass(compat.SIGTERMException, SystemExit)


@pytest.mark.parametrize("package,bound", [("torch", 3), ("pytorch-lightning", 3), ("transformers", 6),
                                           ("hydra-core", 2)])
def test_major_versions_are_bounded(package, bound):
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    spec = re.search(rf'"{package}[<>=!~][^"]*"', text).group(0)
    assert "<" in spec, f"pyproject.toml: {spec} needs an upper bound on the major version"
