"""Hydra callbacks: after a sweep, collect every job's status from its results.json (in the launching process).

Jobs may run in other processes (joblib, SLURM), so their statuses cannot be gathered from memory; the
files are the truth. `leedl run -m` exits non-zero when a job failed and says where to look.
"""
from __future__ import annotations

import logging
from pathlib import Path

from hydra.experimental.callback import Callback

from leedl_cli.results import SWEEP_STATUSES, find_results, read_results

log = logging.getLogger("leedl")


class SweepSummary(Callback):
    def on_multirun_end(self, config, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        statuses = []
        for path in find_results(sweep_dir) if sweep_dir.is_dir() else []:
            try:
                res = read_results(path)
            except (OSError, ValueError):
                statuses.append("unreadable")
                continue
            statuses.append("skipped" if res.get("skipped") else res.get("status", "unknown"))
        SWEEP_STATUSES[:] = statuses
        counts = {s: statuses.count(s) for s in dict.fromkeys(statuses)}
        log.info("sweep %s: %d jobs (%s); table: leedl report %s", sweep_dir, len(statuses),
                 ", ".join(f"{n} {s}" for s, n in counts.items()) or "none", sweep_dir)
