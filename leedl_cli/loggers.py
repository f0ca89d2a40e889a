"""metrics.csv for every run: Lightning's CSVLogger, but appending when a run is resumed and rewriting atomically.

Lightning's CSV writer deletes an existing metrics.csv when its directory is not empty (and a run directory
never is: .hydra/, leedl.log, results.json). A resumed run must append to the rows of its completed epochs,
and a header change (a new metric key) must not leave half a file if the process is killed meanwhile.
"""
from __future__ import annotations

import csv
import os

from lightning_fabric.loggers.logger import rank_zero_experiment
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter

from leedl_cli.results import write_csv_atomic


class _AppendingWriter(ExperimentWriter):
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


class MetricsCSVLogger(CSVLogger):
    """CSVLogger writing `<run dir>/metrics.csv` (and hparams.yaml), appending across resumes."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            os.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment
