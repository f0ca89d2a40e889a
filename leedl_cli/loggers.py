"""metrics.csv for every run: Lightning's CSVLogger, but appending when a run is resumed and rewriting atomically.

Lightning's CSV writer deletes an existing metrics.csv when its directory is not empty (and a run directory
never is: .hydra/, leedl.log, results.json). A resumed run must append to the rows of its completed epochs,
and a header change (a new metric key) must not leave half a file if the process is killed meanwhile.
The parts of Lightning this overrides are in `leedl_cli.compat`.
"""
from __future__ import annotations

import logging
from pathlib import Path

from leedl_cli.compat import AppendingCSVLogger, wandb_run_started

log = logging.getLogger("leedl")


class MetricsCSVLogger(AppendingCSVLogger):
    """CSVLogger writing `<run dir>/metrics.csv` (and hparams.yaml), appending across resumes."""


def close_loggers(loggers: list, status: str) -> dict:
    """Finalize every logger (also after a failure); return where the offline wandb run lies, if any."""
    info = {}
    for lg in loggers:
        try:
            lg.finalize("success" if status == "ok" else "failed")
            if type(lg).__name__ == "WandbLogger" and wandb_run_started(lg):
                run = lg.experiment
                info["wandb_dir"] = str(Path(run.dir).parent)
                info["wandb_id"] = run.id
                run.finish(exit_code=0 if status in ("ok", "diverged") else 1)
        except Exception as err:  # a logger that fails to close must not hide the run's own result
            log.warning("could not close logger %s: %s", type(lg).__name__, err)
    return info
