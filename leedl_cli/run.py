"""One run: config -> seed -> data module -> model -> task module -> trainer -> fit/test -> results.json.

`train(cfg, run_dir)` is the whole path and is what tests call through Hydra's compose API; `main()`
is the Hydra entry point behind `leedl run`.
"""
from __future__ import annotations

import inspect
import logging
import os
import platform
import secrets
import sys
import time
import traceback
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf, open_dict

from leedl_cli import resolvers  # noqa: F401  (registers ${leedl_uid:})
from leedl_cli.errors import IncompatibleModelError, LeedlError
from leedl_cli.paths import conf_dir
from leedl_cli.results import RESULTS_FILE, read_results, write_json_atomic

log = logging.getLogger("leedl")
warnings.filterwarnings("ignore", message=".*exists and is not empty.*")
warnings.filterwarnings("ignore", message=".*LeafSpec.*")

VERSIONED = ["leedl", "torch", "pytorch-lightning", "torchmetrics", "hydra-core", "omegaconf", "transformers",
             "gymnasium", "wandb", "numpy"]
JOB_STATUSES: list[str] = []   # statuses of the jobs run in this process (the CLI's exit code)
LAST_RESULTS: dict | None = None


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def _without(cfg: DictConfig, *keys: str) -> DictConfig:
    out = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    for k in keys:
        out.pop(k, None)
    return out


def accepted_kwargs(target: str, kwargs: dict) -> dict:
    """The subset of `kwargs` that the callable named by `target` accepts (all of them if it takes **kwargs)."""
    fn = hydra.utils.get_object(target)
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return kwargs
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return kwargs
    return {k: v for k, v in kwargs.items() if k in params}


def check_compatible(cfg: DictConfig) -> None:
    """Refuse a task/model pairing the task does not list, before anything is built or trained."""
    allowed = cfg.task.get("models")
    model_name = cfg.model.get("name")
    if allowed and model_name not in allowed:
        raise IncompatibleModelError(
            f"task={cfg.task.name} cannot train model={model_name}. Models that fit this task: "
            f"{', '.join(allowed)} (e.g. `leedl run task={cfg.task.name} model={allowed[0]}`)."
        )


def apply_debug(cfg: DictConfig) -> None:
    """debug=smoke: apply the task's own shrinkage (`task.smoke`: {dotted.key: value}) on top of debug/smoke."""
    if cfg.get("debug_mode") == "smoke":
        for key, value in (cfg.task.get("smoke") or {}).items():
            OmegaConf.update(cfg, key, value, force_add=True)


def build_model(cfg: DictConfig, shapes: dict):
    model_cfg = _without(cfg.model, "name")
    return hydra.utils.instantiate(model_cfg, **accepted_kwargs(model_cfg._target_, shapes))


def build_module(cfg: DictConfig, model, shapes: dict):
    module_cfg = OmegaConf.create(OmegaConf.to_container(cfg.task.module, resolve=True))
    optimizer = hydra.utils.instantiate(cfg.optimizer) if cfg.get("optimizer") else None
    extra = {"model": model, "optimizer": optimizer, "scheduler": cfg.get("scheduler")}
    # a task may also ask for data shapes (num_classes, vocab_size, ...) by naming them in its __init__
    extra.update({k: v for k, v in accepted_kwargs(module_cfg._target_, shapes).items() if k not in module_cfg})
    return hydra.utils.instantiate(module_cfg, _recursive_=False, **extra)


def build_loggers(cfg: DictConfig, run_dir: Path, wandb_id: str | None = None) -> list:
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
                          tags=list(cfg.get("tags") or []))
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


def close_loggers(loggers: list, status: str) -> dict:
    """Finalize every logger (also after a failure); return where the offline wandb run lies, if any."""
    info = {}
    for lg in loggers:
        try:
            lg.finalize("success" if status == "ok" else "failed")
            if type(lg).__name__ == "WandbLogger" and lg._experiment is not None:
                run = lg.experiment
                info["wandb_dir"] = str(Path(run.dir).parent)
                info["wandb_id"] = run.id
                run.finish(exit_code=0 if status != "failed" else 1)
        except Exception as err:  # a logger that fails to close must not hide the run's own result
            log.warning("could not close logger %s: %s", type(lg).__name__, err)
    return info


def uses_wandb(cfg: DictConfig) -> bool:
    return any(lcfg is not None and "WandbLogger" in str(lcfg.get("_target_", ""))
               for lcfg in (cfg.get("logger") or {}).values())


def launch_rank() -> int:
    """This process's global rank as far as the environment says (DDP children, SLURM tasks); 0 otherwise."""
    for var in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if os.environ.get(var, "").isdigit() and (var != "SLURM_PROCID" or int(os.environ.get("SLURM_NTASKS", 1)) > 1):
            return int(os.environ[var])
    return 0


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
        import pytorch_lightning.strategies.launchers.subprocess_script as launcher

        self.env = {k: os.environ.get(k) for k in DDP_ENV}
        if launch_rank() != 0:
            return self
        OmegaConf.save(self.cfg, self.config_file, resolve=True)
        command = [sys.executable, "-m", "leedl_cli.ddp_worker", str(self.config_file), str(self.run_dir)]
        self.saved = (launcher._hydra_subprocess_cmd, launcher._basic_subprocess_cmd)
        launcher._hydra_subprocess_cmd = lambda local_rank: (command, os.getcwd())
        launcher._basic_subprocess_cmd = lambda: command
        return self

    def __exit__(self, *exc) -> None:
        import torch.distributed as dist

        if launch_rank() == 0 and hasattr(self, "saved"):
            import pytorch_lightning.strategies.launchers.subprocess_script as launcher

            launcher._hydra_subprocess_cmd, launcher._basic_subprocess_cmd = self.saved
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


def _resume_state(cfg: DictConfig, run_dir: Path, writer: bool = True) -> dict:
    """What a resumed run takes from the interrupted one: seed, wandb id, start time, its last checkpoint."""
    from leedl_cli.resume import keep_completed_rows

    old = read_results(run_dir / RESULTS_FILE) if (run_dir / RESULTS_FILE).is_file() else {}
    state: dict[str, Any] = {"old": old, "ckpt": None}
    last = run_dir / "checkpoints" / "last.ckpt"
    if last.is_file():
        import torch

        ckpt = torch.load(last, map_location="cpu", weights_only=False)
        state.update(ckpt=str(last), epoch=int(ckpt.get("epoch", -1)), global_step=int(ckpt.get("global_step", 0)))
        del ckpt
        if writer:
            state["dropped_rows"] = keep_completed_rows(run_dir / "metrics.csv", state["epoch"], state["global_step"])
    elif writer:   # killed before the first checkpoint: start over in the same directory
        keep_completed_rows(run_dir / "metrics.csv", -1, 0)
    return state


def train(cfg: DictConfig, run_dir: str | os.PathLike, overrides: list[str] | None = None,
          choices: dict | None = None) -> dict:
    """Run one experiment described by `cfg`, writing everything into `run_dir`. Never raises for a failed run:
    the returned dict (also results.json) says `status` ok / diverged / failed with the error.

    With `cfg.resume` set (to `run_dir`), continue the interrupted run there: same seed and wandb run, from its
    last end-of-epoch checkpoint, appending to metrics.csv. Only the process of global rank 0 writes files.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    writer = launch_rank() == 0
    resume = _resume_state(cfg, run_dir, writer) if cfg.get("resume") else None
    old = resume["old"] if resume else {}
    with open_dict(cfg):
        if old.get("seed") is not None:
            cfg.seed = int(old["seed"])
        if cfg.get("seed") is None:
            cfg.seed = secrets.randbelow(2**31 - 1)
    wandb_id = None
    if uses_wandb(cfg):
        wandb_id = old.get("wandb_id") or cfg.get("wandb_id") or secrets.token_hex(4)
    results: dict[str, Any] = {
        "status": "running",
        "task": cfg.task.get("name"),
        "model": cfg.model.get("name"),
        "choices": dict(choices or {}),
        "overrides": list(old.get("overrides") or overrides or []),
        "seed": int(cfg.seed),
        "run_dir": str(run_dir),
        "started": old.get("started") or time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        "report": OmegaConf.to_container(cfg.report, resolve=True) if cfg.get("report") else {},
        "versions": versions(),
        "host": platform.node(),
        "pid": os.getpid(),
    }
    if wandb_id:
        results["wandb_id"] = wandb_id
    if resume:
        results["resumed"] = list(old.get("resumed") or []) + [{
            "at": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
            "checkpoint": resume["ckpt"], "from_epoch": resume.get("epoch"),
            "previous_status": old.get("status")}]
        if old.get("overrides") and overrides:
            extra = [o for o in overrides if o not in old["overrides"] and not o.startswith(("resume=", "hydra."))]
            if extra:
                results["resumed"][-1]["extra_overrides"] = extra
        if writer:
            log.info("resuming %s from %s", run_dir, resume["ckpt"] or "the start (no checkpoint yet)")
    if writer:
        write_json_atomic(run_dir / RESULTS_FILE, results)
    loggers: list = []
    module = None
    timing = None
    t_fit = t_test = 0.0
    try:
        with open_dict(cfg):
            apply_debug(cfg)
        check_compatible(cfg)

        import pytorch_lightning as pl
        import torch

        from leedl_cli.callbacks import TimingCallback

        skip_nvml_check_without_gpus()
        if cfg.get("threads"):
            torch.set_num_threads(int(cfg.threads))
        results["threads"] = torch.get_num_threads()
        pl.seed_everything(int(cfg.seed), workers=True, verbose=False)

        datamodule = hydra.utils.instantiate(cfg.task.data) if cfg.task.get("data") else None
        shapes = datamodule.model_kwargs() if datamodule is not None and hasattr(datamodule, "model_kwargs") else {}
        model = build_model(cfg, shapes)
        module = build_module(cfg, model, shapes)
        module.run_dir = run_dir
        results["parameters"] = sum(p.numel() for p in model.parameters())

        timing = TimingCallback()
        loggers = build_loggers(cfg, run_dir, wandb_id)
        callbacks = build_callbacks(cfg, run_dir) + [timing]
        with ddp_children(cfg, run_dir):
            trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers,
                                              default_root_dir=str(run_dir), **checkpointing(cfg, callbacks))
            writer = trainer.global_rank == 0
            metrics: dict[str, float] = {}
            if cfg.task.get("fit", True):
                t0 = time.perf_counter()
                ckpt_path = resume["ckpt"] if resume and resume["ckpt"] else cfg.get("ckpt_path")
                trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path,
                            weights_only=False if resume and resume["ckpt"] else None)
                t_fit = time.perf_counter() - t0
                metrics.update(_float_metrics(trainer.callback_metrics))
            if cfg.task.get("test", True) and not module.diverged:
                t0 = time.perf_counter()
                for out in trainer.test(module, datamodule=datamodule, verbose=False):
                    metrics.update(_float_metrics(out))
                t_test = time.perf_counter() - t0
        results["metrics"] = metrics
        results["status"] = "diverged" if module.diverged else "ok"
        if module.diverged:
            log.warning("the loss became NaN/inf: training stopped, the run is recorded as diverged")
    except LeedlError as err:
        results.update(status="failed", error=str(err), error_type=type(err).__name__)
        log.error("%s", err)
    except Exception as err:  # recorded, not re-raised: a sweep goes on after a failed job
        results.update(status="failed", error=f"{type(err).__name__}: {err}", error_type=type(err).__name__)
        log.error("run failed: %s: %s\n%s", type(err).__name__, err, traceback.format_exc())
    finally:
        if module is not None:
            results.update(module.results)
        results.update(close_loggers(loggers, results["status"]))
        finished = time.time()
        results["timings"] = {"total_s": finished - started, "fit_s": t_fit, "test_s": t_test,
                              **(timing.summary() if timing is not None else {})}
        if resume and old.get("timings"):
            results["timings"]["before_resume_total_s"] = old["timings"].get("total_s")
        results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(finished))
        if writer:
            write_json_atomic(run_dir / RESULTS_FILE, results)
    return results


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


def skip_if_done(cfg: DictConfig, run_dir: Path, overrides: list[str]) -> dict | None:
    """skip_done=true: when this job already finished with status ok under output_root, point to it instead."""
    from leedl_cli.resume import find_done

    done = find_done(cfg.output_root, overrides, exclude=run_dir)
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

    global LAST_RESULTS
    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    overrides = list(hc.overrides.task)
    results = skip_if_done(cfg, run_dir, overrides) if cfg.get("skip_done") else None
    if results is None:
        if cfg.get("threads") is None and (threads := launcher_threads(hc)):
            with open_dict(cfg):
                cfg.threads = threads
        results = train(cfg, run_dir, overrides=overrides,
                        choices={k: v for k, v in hc.runtime.choices.items() if not k.startswith("hydra")})
        log.info("run %s: %s -> %s", results["status"], run_dir, RESULTS_FILE)
        if results.get("wandb_dir"):
            log.info("offline wandb run; to upload it: wandb sync %s", results["wandb_dir"])
    JOB_STATUSES.append(results["status"])
    LAST_RESULTS = results
    metric = (cfg.get("report") or {}).get("optimize")
    if metric:   # for sweepers (optuna) that minimise/maximise a returned value
        value = results.get("metrics", {}).get(metric)
        return float(value) if value is not None else float("nan")
    return None
