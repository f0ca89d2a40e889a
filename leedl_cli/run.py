"""One run: config -> seed -> data module -> model -> task module -> trainer -> fit/test -> results.json.

`train(cfg, run_dir)` is the whole path and is what tests call through Hydra's compose API; `main()`
is the Hydra entry point behind `leedl run`.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf, open_dict

from leedl_cli import resolvers  # noqa: F401  (registers ${leedl_uid:})
from leedl_cli.errors import LeedlError
from leedl_cli.paths import conf_dir
from leedl_cli.record import RunRecord, launch_rank
from leedl_cli.results import RESULTS_FILE, read_results, write_json_atomic
from leedl_cli.validate import validate

log = logging.getLogger("leedl")
warnings.filterwarnings("ignore", message=".*exists and is not empty.*")
warnings.filterwarnings("ignore", message=".*LeafSpec.*")

def _without(cfg: DictConfig, *keys: str) -> DictConfig:
    out = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    for k in keys:
        out.pop(k, None)
    return out


def data_spec(datamodule):
    """What the data module provides (a dataclass, leedl_cli.contract), or None without a data module."""
    if datamodule is None:
        return None
    return datamodule.provides()


def build_model(cfg: DictConfig, spec):
    """The model of `cfg.model`, given exactly the `Provided` values it declares, from the data's spec."""
    from leedl_cli.contract import wire

    model_cfg = _without(cfg.model, "name")
    model_target = hydra.utils.get_object(model_cfg._target_)
    task_target = hydra.utils.get_object(cfg.task.module._target_)
    model_kwargs, _ = wire(spec, model_target, task_target)
    # the provided values are passed as they are (instantiate's own kwargs would become DictConfig/ListConfig)
    return hydra.utils.instantiate(model_cfg, _partial_=True)(**model_kwargs)


def build_module(cfg: DictConfig, model, spec, run_dir: Path):
    """The task's LightningModule: its config, the model, the partial optimizer, the scheduler config, the run
    directory, and the `Provided` values it declares."""
    from leedl_cli.contract import wire

    module_cfg = OmegaConf.create(OmegaConf.to_container(cfg.task.module, resolve=True))
    optimizer = hydra.utils.instantiate(cfg.optimizer) if cfg.get("optimizer") else None
    _, task_kwargs = wire(spec, type(model), hydra.utils.get_object(module_cfg._target_))
    build = hydra.utils.instantiate(module_cfg, _recursive_=False, _partial_=True)
    return build(model=model, optimizer=optimizer, scheduler=cfg.get("scheduler"), run_dir=run_dir, **task_kwargs)


def build_loggers(cfg: DictConfig, run_dir: Path, wandb_id: str | None = None, overrides: list[str] | None = None,
                  sweep: str | None = None) -> list:
    """metrics.csv always, plus the loggers of `conf/logger`. A wandb run carries `group` = its sweep and
    `job_type` = its job without the seed (leedl_cli.jobs), so wandb groups seeds as `leedl report` does."""
    from leedl_cli.jobs import wandb_job_type
    from leedl_cli.loggers import MetricsCSVLogger

    loggers = [MetricsCSVLogger(save_dir=str(run_dir), name="", version="")]  # metrics.csv, whatever else is chosen
    for lcfg in (cfg.get("logger") or {}).values():
        if lcfg is None or "_target_" not in lcfg:
            continue
        kwargs: dict[str, Any] = {"save_dir": str(run_dir)}
        if "WandbLogger" in lcfg._target_:
            if lcfg.get("offline", True):
                os.environ.setdefault("WANDB_MODE", "offline")
            kwargs.update(name=cfg.get("name") or run_dir.name, dir=str(run_dir),
                          id=wandb_id, resume="allow" if wandb_id else None,
                          tags=list(cfg.get("tags") or []), job_type=wandb_job_type(overrides or []))
            if sweep:
                kwargs["group"] = sweep
        logger = hydra.utils.instantiate(lcfg, **kwargs)
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        loggers.append(logger)
    return loggers


def checkpointing(cfg: DictConfig, callbacks: list) -> dict:
    """Checkpoints only where a `conf/callbacks` option asks for them (`callbacks=none`: none at all).

    Lightning otherwise adds its own ModelCheckpoint, which writes checkpoints/epoch=N-step=M.ckpt that
    nobody asked for (and does bookkeeping on every training step).
    """
    from pytorch_lightning.callbacks import ModelCheckpoint

    if cfg.trainer.get("enable_checkpointing") is not None:
        return {}
    return {"enable_checkpointing": any(isinstance(c, ModelCheckpoint) for c in callbacks)}


def build_callbacks(cfg: DictConfig, run_dir: Path) -> list:
    callbacks = []
    for ccfg in (cfg.get("callbacks") or {}).values():
        if ccfg is None or "_target_" not in ccfg:
            continue
        kwargs = {}
        if ccfg._target_.endswith("ModelCheckpoint") and not ccfg.get("dirpath"):
            kwargs["dirpath"] = str(run_dir / "checkpoints")
        callbacks.append(hydra.utils.instantiate(ccfg, **kwargs))
    return callbacks


def skip_nvml_check_without_gpus() -> None:
    """Importing Lightning sets PYTORCH_NVML_BASED_CUDA_CHECK=1 (CUDA checks that do not initialise CUDA, so
    that forked processes can still use it). On a machine without NVIDIA GPUs that check reloads NVML on every
    call, and torch's optimizers ask on every step (0.1-0.35 ms per update on these CPUs, several % of a small
    model's step). With no GPU there is nothing to protect: use torch's own (cached) check instead."""
    import torch

    if os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") == "1" and torch.cuda.device_count() == 0:
        os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "0"


DDP_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE", "RANK", "PL_GLOBAL_SEED")


class ddp_children:
    """While a DDP run starts its other processes, start them as `python -m leedl_cli.ddp_worker CONFIG RUN_DIR`.

    Lightning's default re-runs the command line (`leedl run -m ...`), which under Hydra means a second run
    directory per process, or the whole sweep again in every child. The worker runs exactly this job's
    resolved config in the same run directory. Afterwards the DDP environment variables Lightning set in this
    process and the process group are removed, so the next job of a sweep starts its own processes.
    """

    def __init__(self, cfg: DictConfig, run_dir: Path) -> None:
        self.cfg, self.run_dir = cfg, run_dir
        self.config_file = run_dir / ".ddp_worker_config.yaml"

    def __enter__(self):
        from leedl_cli.compat import subprocess_command

        self.env = {k: os.environ.get(k) for k in DDP_ENV}
        self.patch = None
        if launch_rank() != 0:
            return self
        OmegaConf.save(self.cfg, self.config_file, resolve=True)
        command = [sys.executable, "-m", "leedl_cli.ddp_worker", str(self.config_file), str(self.run_dir)]
        self.patch = subprocess_command(command)
        self.patch.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        import torch.distributed as dist

        if self.patch is not None:
            self.patch.__exit__(None, None, None)
            self.config_file.unlink(missing_ok=True)
            for k, v in self.env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


def _float_metrics(metrics: dict) -> dict:
    out = {}
    for k, v in metrics.items():
        try:
            out[k] = float(v)
        except (TypeError, ValueError):
            continue
    return out


def train(cfg: DictConfig, run_dir: str | os.PathLike, overrides: list[str] | None = None,
          choices: dict | None = None, sweep: str | None = None, checked: bool = False) -> dict:
    """Run one experiment described by `cfg`, writing everything into `run_dir`. Never raises for a failed run:
    the returned dict (also results.json) says `status` ok / diverged / failed / interrupted.

    With `cfg.resume` set (to `run_dir`), continue the interrupted run there: same seed and wandb run, from its
    last checkpoint, appending to metrics.csv. Only the process of global rank 0 writes files. `checked`: the
    config was validated already (a DDP worker's copy of rank 0's resolved config).
    """
    from leedl_cli.signals import GracefulStop

    with GracefulStop() as stop, RunRecord(cfg, run_dir, overrides, choices, sweep) as record:
        if not checked:   # a DDP worker runs rank 0's resolved config, checked there
            validate(cfg)
        fit_and_test(cfg, record, stop)
    return record.results


def warn_slow_cpu_bf16(cfg: DictConfig, torch) -> None:
    """bf16-mixed on a CPU without bfloat16 instructions (AVX512-BF16 / AMX) is emulated: slower than 32-bit."""
    precision = str(cfg.trainer.get("precision", ""))
    supported = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)   # private; absent: do not guess
    if (str(cfg.trainer.get("accelerator", "")) == "cpu" and precision.startswith("bf16") and supported is not None
            and not supported()):
        log.warning("trainer.precision=%s on a CPU without bfloat16 instructions is slower than 32-bit; "
                    "add trainer.precision=32-true", precision)


def torch_threads(cfg: DictConfig, torch) -> None:
    """The one thread setting: `threads` (null: torch's default), at most the machine's cores."""
    if cfg.get("threads"):
        cores = os.cpu_count() or 1
        threads = int(cfg.threads)
        if threads > cores:
            log.warning("threads=%d is more than this machine's %d cores: using %d", threads, cores, cores)
            threads = cores
        torch.set_num_threads(threads)


def weights_to_test(cfg: DictConfig, callbacks: list) -> str:
    """`task.test_weights` (best | last | ema); unset: best when the task's monitor is a validation metric and
    its best epoch is kept, else last."""
    from pytorch_lightning.callbacks import ModelCheckpoint

    chosen = cfg.task.get("test_weights")
    keeps_best = any(isinstance(c, ModelCheckpoint) and c.monitor for c in callbacks)
    if chosen is None:
        monitor = str(cfg.task.get("monitor") or "")
        return "best" if keeps_best and monitor.startswith("val/") else "last"
    if chosen == "best" and not keeps_best:
        raise LeedlError("task.test_weights=best: no checkpoint keeps the best epoch (callbacks=none?); "
                         "use task.test_weights=last or callbacks=default")
    return str(chosen)


def best_checkpoint(callbacks: list) -> str | None:
    from pytorch_lightning.callbacks import ModelCheckpoint

    for c in callbacks:
        if isinstance(c, ModelCheckpoint) and c.monitor and c.best_model_path:
            return c.best_model_path
    return None


def fit_and_test(cfg: DictConfig, record: RunRecord, stop) -> None:
    """build (data, model, task module, loggers, callbacks, trainer) -> fit -> test, into `record`."""
    import pytorch_lightning as pl
    import torch

    from leedl_cli.callbacks import TimingCallback
    from leedl_cli.signals import StopOnSignal

    skip_nvml_check_without_gpus()
    torch_threads(cfg, torch)
    warn_slow_cpu_bf16(cfg, torch)
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)

    datamodule = hydra.utils.instantiate(cfg.task.data) if cfg.task.get("data") else None
    spec = data_spec(datamodule)
    model = build_model(cfg, spec)
    module = record.module = build_module(cfg, model, spec, record.run_dir)
    if cfg.get("channels_last"):
        module.use_channels_last()
    record.results["parameters"] = sum(p.numel() for p in model.parameters())

    record.timing = TimingCallback()
    record.loggers = build_loggers(cfg, record.run_dir, record.wandb_id, record.overrides, record.sweep)
    callbacks = build_callbacks(cfg, record.run_dir) + [record.timing, StopOnSignal(stop, record.run_dir / "checkpoints")]
    tested = weights_to_test(cfg, callbacks)
    if tested == "ema":
        from leedl_cli.ema import EMAWeights

        callbacks.append(EMAWeights(decay=float(cfg.task.get("ema_decay", 0.999))))
    stop.raise_if_received()
    metrics = record.results["metrics"] = {}
    with ddp_children(cfg, record.run_dir):
        from leedl_cli.checkpoint_io import AtomicCheckpointIO

        trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=record.loggers,
                                          default_root_dir=str(record.run_dir), plugins=[AtomicCheckpointIO()],
                                          **checkpointing(cfg, callbacks))
        record.writer = trainer.global_rank == 0
        fitted = cfg.task.get("fit", True)
        if fitted:
            t0 = time.perf_counter()
            trainer.fit(module, datamodule=datamodule, ckpt_path=record.checkpoint or cfg.get("ckpt_path"),
                        weights_only=False if record.checkpoint else None)
            record.fit_s = time.perf_counter() - t0
            metrics.update(_float_metrics(trainer.callback_metrics))
        stop.raise_if_received(trainer.global_step)
        record.results["threads"] = torch.get_num_threads()
        record.results["tested_weights"] = "none (no test phase)"
        if cfg.task.get("test", True) and not module.diverged:
            ckpt = best_checkpoint(callbacks) if fitted and tested == "best" else None
            if fitted and tested == "best" and ckpt is None:
                log.warning("task.test_weights=best: no best checkpoint was written; testing the last weights")
                tested = "last"
            record.results["tested_weights"] = tested if fitted else "loaded"   # fit: false: as built / weights_from
            record.results["tested_checkpoint"] = ckpt
            t0 = time.perf_counter()
            for out in trainer.test(module, datamodule=datamodule, verbose=False, ckpt_path=ckpt,
                                    weights_only=False if ckpt else None):
                metrics.update(_float_metrics(out))
            record.test_s = time.perf_counter() - t0


def launcher_threads(hc) -> int | None:
    """Torch threads per job under a parallel launcher (joblib): the cores split between the jobs at once."""
    launcher = hc.launcher or {}
    if "joblib" not in str(launcher.get("_target_", "")).lower():
        return None
    cores = os.cpu_count() or 1
    n_jobs = int(launcher.get("n_jobs") or -1)
    if n_jobs < 0:
        n_jobs = max(1, cores + 1 + n_jobs)
    return max(1, cores // n_jobs)


def skip_if_done(cfg: DictConfig, run_dir: Path, overrides: list[str], sweep: str | None) -> dict | None:
    """skip_done=true: when this job already finished with status ok under output_root (or in the sweep directory
    being continued), point to it instead."""
    from leedl_cli.resume import find_done

    done = find_done(cfg.output_root, overrides, exclude=run_dir, sweep_dir=sweep)
    if done is None:
        return None
    results = read_results(done / RESULTS_FILE)
    results.update(skipped=True, done_in=str(done), run_dir=str(run_dir), overrides=list(overrides))
    write_json_atomic(run_dir / RESULTS_FILE, results)
    log.info("skip_done: this job already finished in %s (status ok); not run again", done)
    return results


@hydra.main(config_path=str(conf_dir()), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    overrides = list(hc.overrides.task)
    sweep = str(Path(hc.sweep.dir)) if str(hc.mode) == "RunMode.MULTIRUN" else None
    results = skip_if_done(cfg, run_dir, overrides, sweep) if cfg.get("skip_done") else None
    if results is None:
        parallel = launcher_threads(hc)
        if cfg.get("threads") is None and parallel:
            with open_dict(cfg):
                cfg.threads = parallel
        watch, sweep_process = None, multiprocessing.parent_process()
        if parallel and sweep_process is not None:   # a joblib worker: stop if the sweep dies
            from leedl_cli.signals import stop_when_orphaned

            watch = stop_when_orphaned(sweep_process.pid)
        try:
            results = train(cfg, run_dir, overrides=overrides, sweep=sweep,
                            choices={k: v for k, v in hc.runtime.choices.items() if not k.startswith("hydra")})
        finally:
            if watch is not None:
                watch.set()
        log.info("run %s: %s -> %s", results["status"], run_dir, RESULTS_FILE)
        if results.get("wandb_dir"):
            log.info("offline wandb run; to upload it: wandb sync %s", results["wandb_dir"])
    if results["status"] == "interrupted":   # a stopped job stops its sweep too (after recording itself)
        raise SystemExit(results["exit_code"])
    metric = (cfg.get("report") or {}).get("optimize")
    if metric:   # for sweepers (optuna) that minimise/maximise a returned value
        value = results.get("metrics", {}).get(metric)
        return float(value) if value is not None else float("nan")
    return None
