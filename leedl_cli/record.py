"""The record of one run: results.json from start to end, whatever happens in between.

`RunRecord` is what lightning-hydra-template's `task_wrapper` is to its `train`: around the short
build -> fit -> test path of run.py it writes results.json when the run starts (`running`), and when it ends
says how (`ok`, `diverged`, `failed` with the error, `interrupted` with the signal and the step), with the
timings, the seed, the overrides and the package versions. A failure is recorded, not re-raised (a sweep
goes on after a failed job); only the process of global rank 0 writes.
"""
from __future__ import annotations

import errno
import logging
import os
import platform
import secrets
import signal
import time
import traceback
from importlib import metadata
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from leedl_cli.errors import LeedlError
from leedl_cli.results import RESULTS_FILE, read_results, write_json_atomic

log = logging.getLogger("leedl")

VERSIONED = ["leedl", "torch", "pytorch-lightning", "torchmetrics", "hydra-core", "omegaconf", "transformers",
             "gymnasium", "wandb", "numpy"]


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def launch_rank() -> int:
    """This process's global rank as far as the environment says (DDP children, SLURM tasks); 0 otherwise."""
    for var in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if os.environ.get(var, "").isdigit() and (var != "SLURM_PROCID" or int(os.environ.get("SLURM_NTASKS", 1)) > 1):
            return int(os.environ[var])
    return 0


def _now(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t))


def no_space_left(exc: BaseException | None) -> bool:
    """Whether an error (or one it was raised from) is a full disk: ENOSPC, however a library wrapped it."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return True
        if "No space left on device" in str(exc):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def readable_checkpoint(folder: Path) -> tuple[Path, dict] | None:
    """(path, content) of the checkpoint to resume from: last.ckpt, or when it is damaged the newest other
    checkpoint that loads and holds the training state (saying so); None when the folder has no checkpoint."""
    import torch

    candidates = sorted(folder.glob("*.ckpt"), key=lambda p: (p.name != "last.ckpt", -p.stat().st_mtime))
    if not candidates:
        return None
    damaged = []
    for path in candidates:
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as err:   # cut short (a full disk, a killed copy), or not a checkpoint
            damaged.append(f"{path.name} ({type(err).__name__})")
            continue
        if not isinstance(ckpt, dict) or "optimizer_states" not in ckpt:
            damaged.append(f"{path.name} (weights only, no training state)")
            continue
        if damaged:
            log.warning("resume: %s cannot be read; continuing from %s", ", ".join(damaged), path.name)
        return path, ckpt
    raise LeedlError(f"resume: no readable checkpoint in {folder}: {', '.join(damaged)}; start a new run")


def resume_state(run_dir: Path, writer: bool = True) -> dict:
    """What a resumed run takes from the interrupted one: seed, wandb id, start time, its last checkpoint."""
    from leedl_cli.resume import keep_completed_rows

    old = read_results(run_dir / RESULTS_FILE) if (run_dir / RESULTS_FILE).is_file() else {}
    state: dict[str, Any] = {"old": old, "ckpt": None}
    found = readable_checkpoint(run_dir / "checkpoints")
    if found is not None:
        last, ckpt = found
        state.update(ckpt=str(last), epoch=int(ckpt.get("epoch", -1)), global_step=int(ckpt.get("global_step", 0)))
        del ckpt
        if writer:   # a checkpoint written mid-epoch (a stopped run) keeps the rows of its epoch so far
            state["dropped_rows"] = keep_completed_rows(run_dir / "metrics.csv", state["epoch"], state["global_step"])
    elif writer:   # stopped before the first checkpoint: start over in the same directory
        keep_completed_rows(run_dir / "metrics.csv", -1, 0)
    return state


class RunRecord:
    """`with RunRecord(cfg, run_dir, ...) as record:` the run; afterwards `record.results` is results.json."""

    def __init__(self, cfg: DictConfig, run_dir: str | os.PathLike, overrides: list[str] | None = None,
                 choices: dict | None = None, sweep: str | None = None) -> None:
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.overrides, self.sweep = list(overrides or []), sweep
        self.writer = launch_rank() == 0
        self.started = time.time()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.writer:   # a directory that holds a run is never written by another run (leedl_cli.rundirs)
            from leedl_cli.rundirs import hold, refuse_reuse

            refuse_reuse(self.run_dir, resuming=bool(cfg.get("resume")))
            hold(self.run_dir)
        self.resume = resume_state(self.run_dir, self.writer) if cfg.get("resume") else None
        old = self.resume["old"] if self.resume else {}
        with open_dict(cfg):
            if old.get("seed") is not None:
                cfg.seed = int(old["seed"])
            if cfg.get("seed") is None:
                cfg.seed = secrets.randbelow(2**31 - 1)
        self.module = None          # set by run.py once built: its `results` and `diverged` go in the record
        self.loggers: list = []     # closed when the run ends, also after a failure
        self.timing = None          # leedl_cli.callbacks.TimingCallback
        self.fit_s = self.test_s = 0.0
        self.results: dict[str, Any] = {
            "status": "running",
            "task": cfg.task.get("name"),
            "model": cfg.model.get("name"),
            "choices": dict(choices or {}),
            "overrides": list(old.get("overrides") or self.overrides),
            "seed": int(cfg.seed),
            "run_dir": str(self.run_dir),
            "started": old.get("started") or _now(self.started),
            "report": OmegaConf.to_container(cfg.report, resolve=True) if cfg.get("report") else {},
            "versions": versions(),
            "host": platform.node(),
            "pid": os.getpid(),
        }
        if sweep:
            self.results["sweep"] = sweep
        self.wandb_id = None
        if any(lc is not None and "WandbLogger" in str(lc.get("_target_", "")) for lc in (cfg.get("logger") or {}).values()):
            self.wandb_id = old.get("wandb_id") or cfg.get("wandb_id") or secrets.token_hex(4)
            self.results["wandb_id"] = self.wandb_id
        if self.resume:
            self._note_resume(old)

    def _note_resume(self, old: dict) -> None:
        entry = {"at": _now(self.started), "checkpoint": self.resume["ckpt"], "from_epoch": self.resume.get("epoch"),
                 "from_step": self.resume.get("global_step"), "previous_status": old.get("status")}
        if old.get("overrides") and self.overrides:
            from leedl_cli.resume import LENGTH_KEYS

            extra = [o for o in self.overrides if o not in old["overrides"] and o.lstrip("+").partition("=")[0] in LENGTH_KEYS]
            if extra:   # only lengths (leedl_cli.resume.LENGTH_KEYS): the run and its record say the new ones
                entry["resumed_with"] = extra
                self.results["resumed_with"] = list(old.get("resumed_with") or []) + extra
                keys = {o.partition("=")[0].lstrip("+") for o in extra}
                self.results["overrides"] = [o for o in old["overrides"]
                                             if o.partition("=")[0].lstrip("+") not in keys] + extra
                if self.writer:
                    self._rewrite_hydra_config()
        self.results["resumed"] = list(old.get("resumed") or []) + [entry]
        if self.writer:
            log.info("resuming %s from %s", self.run_dir, self.resume["ckpt"] or "the start (no checkpoint yet)")

    def _rewrite_hydra_config(self) -> None:
        """.hydra/config.yaml and overrides.yaml say what the resumed run runs (written atomically)."""
        from leedl_cli.atomic import write_text_atomic

        hydra_dir = self.run_dir / ".hydra"
        if hydra_dir.is_dir():
            cfg = OmegaConf.create({k: self.cfg[k] for k in self.cfg if k != "hydra"})
            write_text_atomic(hydra_dir / "config.yaml", OmegaConf.to_yaml(cfg))
            write_text_atomic(hydra_dir / "overrides.yaml", OmegaConf.to_yaml(OmegaConf.create(self.results["overrides"])))

    def _keep_weights_only(self) -> None:
        """A finished run keeps weights, not training state (leedl_cli.checkpoint_io); results.json says its size."""
        from leedl_cli.checkpoint_io import folder_bytes, keep_weights_of_finished_run

        folder = self.run_dir / "checkpoints"
        if folder.is_dir():
            tested = self.results.get("tested_checkpoint")
            now = keep_weights_of_finished_run(folder, tested)
            if tested and now != tested:
                self.results["tested_checkpoint"] = now   # the best epoch was the last: one file holds it
        self.results["bytes"] = folder_bytes(self.run_dir)

    @property
    def checkpoint(self) -> str | None:
        """The checkpoint a resumed run continues from (None: a new run, or stopped before any checkpoint)."""
        return self.resume["ckpt"] if self.resume else None

    def write(self) -> None:
        if self.writer:
            write_json_atomic(self.run_dir / RESULTS_FILE, self.results)

    def __enter__(self) -> RunRecord:
        self.write()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        from leedl_cli.signals import Interrupted

        if exc is None:
            diverged = bool(self.module is not None and self.module.diverged)
            self.results["status"] = "diverged" if diverged else "ok"
            if diverged:
                log.warning("the loss became NaN/inf: training stopped, the run is recorded as diverged")
        elif isinstance(exc, (Interrupted, KeyboardInterrupt)) or exc_type.__name__ == "SIGTERMException":
            # KeyboardInterrupt: a second Ctrl-C; SIGTERMException: Lightning's own stop on SIGTERM
            signum = int(getattr(exc, "signum", signal.SIGINT if isinstance(exc, KeyboardInterrupt) else signal.SIGTERM))
            name = signal.Signals(signum).name
            self.results.update(status="interrupted", signal=name, exit_code=128 + signum,
                                interrupted_at_step=getattr(exc, "step", None),
                                interrupted_checkpoint=getattr(exc, "checkpoint", None))
            log.warning("run interrupted by %s at step %s; continue it with: leedl run resume=%s",
                        name, getattr(exc, "step", None), self.run_dir)
        elif no_space_left(exc):
            where = f" (writing {exc.filename})" if getattr(exc, "filename", None) else ""
            self.results.update(status="failed", error=f"no space left on device{where}; earlier files are whole. "
                                f"Free some space, then continue with: leedl run resume={self.run_dir}",
                                error_type="ENOSPC")
            log.error("%s", self.results["error"])
        elif isinstance(exc, LeedlError):
            self.results.update(status="failed", error=str(exc), error_type=type(exc).__name__)
            log.error("%s", exc)
        elif isinstance(exc, Exception):
            self.results.update(status="failed", error=f"{type(exc).__name__}: {exc}", error_type=type(exc).__name__)
            log.error("run failed: %s: %s\n%s", type(exc).__name__, exc,
                      "".join(traceback.format_exception(exc_type, exc, tb)))
        else:   # SystemExit and the like: record, then let it go on
            self.results.update(status="failed", error=f"{exc_type.__name__}: {exc}", error_type=exc_type.__name__)
        self.finish()
        return self.results["status"] != "failed" or isinstance(exc, Exception)

    def finish(self) -> None:
        if self.module is not None:
            self.results.update(self.module.results)
        if self.loggers:
            from leedl_cli.loggers import close_loggers

            self.results.update(close_loggers(self.loggers, self.results["status"]))
        finished = time.time()
        self.results["timings"] = {"total_s": finished - self.started, "fit_s": self.fit_s, "test_s": self.test_s,
                                   **(self.timing.summary() if self.timing is not None else {})}
        old = self.resume["old"] if self.resume else {}
        if old.get("timings"):
            self.results["timings"]["before_resume_total_s"] = old["timings"].get("total_s")
        self.results["finished"] = _now(finished)
        if self.writer and self.results["status"] in ("ok", "diverged"):
            self._keep_weights_only()
        self.write()
        if self.writer:
            from leedl_cli.rundirs import release

            release(self.run_dir)
