"""Hydra callbacks: after a sweep, log every job's status from its results.json (in the launching process).

Jobs may run in other processes (joblib, SLURM), so their statuses cannot be gathered from memory; the
files are the truth. `leedl run -m` reads the same files for its exit status and its per-job lines.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

from hydra.experimental.callback import Callback

from leedl_cli.report.runs import records_since

log = logging.getLogger("leedl")


class SweepSummary(Callback):
    def __init__(self) -> None:
        self.started = 0.0

    def on_multirun_start(self, config, **kwargs) -> None:
        self.started = time.time()

    def on_multirun_end(self, config, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        statuses = [r["status"] for r in records_since(sweep_dir, self.started)]   # this sweep's jobs only
        counts = {s: statuses.count(s) for s in dict.fromkeys(statuses)}
        log.info("sweep %s: %d jobs (%s); table: leedl report %s", sweep_dir, len(statuses),
                 ", ".join(f"{n} {s}" for s, n in counts.items()) or "none", sweep_dir)
