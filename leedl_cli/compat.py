"""Every place leedl touches a private part of Lightning, in one module (tests/test_compat.py pins each one).

When an upgrade of pytorch-lightning moves one of these, the compat test fails with the name of what moved;
nothing else in leedl reaches into Lightning's internals. pyproject.toml bounds the major version.
"""
from __future__ import annotations

import contextlib
import csv
import os
from collections.abc import Iterator

import pytorch_lightning as pl
from lightning_fabric.loggers.logger import rank_zero_experiment
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.utilities.exceptions import SIGTERMException  # noqa: F401  (re-exported for run.py)

from leedl_cli.atomic import write_csv_atomic


def should_update_logs(trainer: pl.Trainer) -> bool:
    """True on the training steps whose logged values reach the loggers (every `log_every_n_steps`)."""
    return bool(trainer._logger_connector.should_update_logs)


def log_step_metrics_now(trainer: pl.Trainer) -> None:
    """Send this training step's logged values to the loggers now (Lightning does it after the step's
    `on_train_batch_end`, which a run stopped there never reaches)."""
    trainer._logger_connector.update_train_step_metrics()


def wandb_run_started(logger) -> bool:
    """Whether a WandbLogger has created its run (reading `logger.experiment` would create one)."""
    return getattr(logger, "_experiment", None) is not None


@contextlib.contextmanager
def subprocess_command(command: list[str]) -> Iterator[None]:
    """While DDP starts its other processes, start them as `command` (Lightning re-runs the command line).

    Lightning's subprocess launcher builds the children's command in two module-level functions (one for
    Hydra apps, one otherwise); both are replaced for the duration and restored afterwards.
    """
    import pytorch_lightning.strategies.launchers.subprocess_script as launcher

    saved = (launcher._hydra_subprocess_cmd, launcher._basic_subprocess_cmd)
    launcher._hydra_subprocess_cmd = lambda local_rank: (command, os.getcwd())
    launcher._basic_subprocess_cmd = lambda: command
    try:
        yield
    finally:
        launcher._hydra_subprocess_cmd, launcher._basic_subprocess_cmd = saved


class AppendingExperimentWriter(ExperimentWriter):
    """Lightning's CSV writer, but keeping an existing metrics.csv (resumed runs append) and rewriting it
    atomically when a new metric key changes the header. Lightning deletes the file when the folder is not
    empty (`_check_log_dir_exists`) and rewrites it in place (`_rewrite_with_new_header`)."""

    def __init__(self, log_dir: str) -> None:
        super().__init__(log_dir)
        if os.path.isfile(self.metrics_file_path):   # continue the file: its header is the start of our keys
            with open(self.metrics_file_path, newline="") as f:
                self.metrics_keys = list(next(csv.reader(f), []))

    def _check_log_dir_exists(self) -> None:   # keep what is there
        pass

    def _rewrite_with_new_header(self, fieldnames: list[str]) -> None:
        with open(self.metrics_file_path, newline="") as f:
            rows = list(csv.DictReader(f))
        write_csv_atomic(self.metrics_file_path, fieldnames, rows)


class AppendingCSVLogger(CSVLogger):
    """CSVLogger whose writer is `AppendingExperimentWriter`."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            os.makedirs(self.root_dir, exist_ok=True)
            self._experiment = AppendingExperimentWriter(log_dir=self.log_dir)
        return self._experiment
