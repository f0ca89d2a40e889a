"""Every value of a composed config checked before anything runs.

The schema is the code itself: each config node with a `_target_` is checked against the signature of the
class or function it names (an unknown key is refused with the keys it accepts; a value must fit the
parameter's annotation: `int`, `float`, `bool`, `str`, `Literal[...]`, lists, `X | None`, ...). Ranges are
attached to the parameters (`Annotated[float, Range(0, 1)]`, leedl_cli.contract); for the classes leedl does not
own (torch optimizers, Lightning's Trainer and callbacks) `EXTERNAL_RANGES` gives them by class and parameter. A
class whose options constrain each other declares `config_problems(options)`, called here. The data -> model ->
task contract (leedl_cli.contract) is checked from the classes alone. Task-level keys are the ones in
`TASK_KEYS` and those some value of this config reads by interpolation (`${task.head}`).

A bad value stops `leedl run` with one message per bad key, naming the key, the value and what is accepted;
exit status 2; nothing is created.
"""
from __future__ import annotations

import inspect
import math
import os
import re
import tempfile
import types
import typing
from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

from leedl_cli.contract import (
    RUNNER_KEYS,
    AtLeastOne,
    NonNegative,
    Positive,
    Probability,
    Range,
    contract_problems,
    is_provided,
    ranges_of,
)
from leedl_cli.errors import IncompatibleModelError, LeedlError
from leedl_cli.schema import _describe, _strip, conforms, parameters  # noqa: F401  (conforms: used by tests)


class ConfigError(LeedlError):
    """A config value that cannot work: the key, the value, what is accepted."""


# keys leedl itself reads and removes before a node is instantiated
LEEDL_KEYS = {"model": {"name"}, "scheduler": {"name", "interval"}}
# keys of the task node that no constructor receives
TASK_KEYS = {
    "name": "the task's name",
    "models": "the models this task can train",
    "monitor": "the metric that picks the best checkpoint",
    "monitor_mode": "min or max",
    "data": "the data module",
    "module": "the task's LightningModule",
    "fit": "false: no training (analysis-only tasks)",
    "test": "false: no test pass",
    "test_weights": "the weights the test uses: best (by the monitor) | last | ema (null: best when the monitor is "
                    "a validation metric, else last)",
    "ema_decay": "with test_weights=ema: the decay of the moving average of the weights",
}
TOP_LEVEL = {"task", "model", "optimizer", "scheduler", "trainer", "logger", "callbacks", "hydra", "seed", "data_dir",
             "output_root", "name", "tags", "report", "threads", "debug_mode", "resume", "skip_done", "wandb_id",
             "ckpt_path", "experiment", "debug", "channels_last"}


# ---- ranges of the parameters of classes leedl does not own, by class and parameter --------------------------
EPOCHS = Range(1, also=(-1,))           # Lightning: -1 = no limit
EXTERNAL_RANGES: dict[str, dict[str, Range]] = {
    "torch.optim.optimizer.Optimizer": {"lr": Positive, "eps": Positive, "weight_decay": NonNegative,
                                        "momentum": Probability, "dampening": Probability, "alpha": Probability,
                                        "lr_decay": NonNegative, "initial_accumulator_value": NonNegative},
    "pytorch_lightning.trainer.trainer.Trainer": {
        "max_epochs": EPOCHS, "max_steps": EPOCHS, "min_epochs": NonNegative, "num_nodes": AtLeastOne,
        "log_every_n_steps": AtLeastOne, "accumulate_grad_batches": AtLeastOne,
        "check_val_every_n_epoch": AtLeastOne, "gradient_clip_val": NonNegative,
        "num_sanity_val_steps": Range(-1)},
    "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint": {"save_top_k": Range(-1)},
}
LIMIT_BATCHES = ("limit_train_batches", "limit_val_batches", "limit_test_batches", "limit_predict_batches",
                 "val_check_interval")
# values a plain `str` parameter of a class leedl does not own cannot take anything but
CHOICES = {
    "trainer.accelerator": ("cpu", "gpu", "cuda", "mps", "tpu", "hpu", "auto"),
    "task.monitor_mode": ("min", "max"),
    "task.test_weights": ("best", "last", "ema"),
}


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def external_ranges(target: Callable) -> dict[str, Range]:
    out: dict[str, Range] = {}
    for c in inspect.getmro(target) if inspect.isclass(target) else ():
        out = {**EXTERNAL_RANGES.get(f"{c.__module__}.{c.__qualname__}", {}), **out}
    return out


def _import(target: str) -> Callable:
    import hydra

    try:
        return hydra.utils.get_object(target)
    except Exception as err:
        raise ConfigError(f"_target_={target}: cannot be imported ({err})") from None


def check_node(path: str, node: dict, errors: list[str], leedl_keys: set[str] = frozenset(),
               sources: dict[str, str] | None = None, runner_keys: tuple[str, ...] = ()) -> None:
    """Check one `_target_` node (its values already resolved) against the signature it names.

    `sources`: {key path: the key it is interpolated from}; a bad value is reported once, where it is set.
    `runner_keys`: parameters run.py passes itself (a task module's model, optimizer, ...)."""
    target = _import(node["_target_"])
    params, hints, open_ended = parameters(target)
    outside = external_ranges(target)
    bad_before = len(errors)
    for key, value in node.items():
        if key.startswith("_") or key in leedl_keys:
            continue
        full = f"{path}.{key}"
        if key not in params:
            if not open_ended:
                accepted = ", ".join(sorted(k for k in params if not k.startswith("_") and k not in runner_keys
                                            and not is_provided(hints.get(k))))
                errors.append(f"{full}: {node['_target_']} has no option {key!r}; its options: {accepted}")
            continue
        if key in runner_keys:
            errors.append(f"{full}: set by leedl itself, not in the config")
            continue
        source = (sources or {}).get(full)
        if source and any(e.startswith(f"{source}=") for e in errors):
            continue
        where = source if source and not source.startswith(("hydra", "oc.")) else full   # the key the user sets
        param = params[key]
        hint = hints.get(key, param.annotation)
        if value is None and param.default is None:
            continue
        if isinstance(value, dict) and "_target_" in value:
            check_node(full, value, errors, sources=sources)
            continue
        if not conforms(value, _strip(hint)):
            errors.append(f"{where}={_show(value)}: expected {_describe(_strip(hint))}")
            continue
        check_value(where, value, errors, ranges_of(hint) + ([outside[key]] if key in outside else []),
                    "an integer" if _integer(_strip(hint)) else "a number")
    owner_rules = getattr(target, "config_problems", None)
    if owner_rules is not None and len(errors) == bad_before:
        options = {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}
        options.update({k: v for k, v in node.items() if not k.startswith("_")})
        errors.extend(f"{path}.{line}" for line in owner_rules(options))


def _integer(hint: Any) -> bool:
    """`int` or `int | None`."""
    return hint is int or (typing.get_origin(hint) in (typing.Union, types.UnionType)
                           and [a for a in typing.get_args(hint) if a is not type(None)] == [int])


def check_value(full: str, value: Any, errors: list[str], ranges: list[Range] = (), kind: str = "a number") -> None:
    leaf = full.rsplit(".", 1)[-1]
    if full in CHOICES and value not in CHOICES[full]:
        errors.append(f"{full}={_show(value)}: expected one of {', '.join(CHOICES[full])}")
        return
    if _num(value) and isinstance(value, float) and not math.isfinite(value):
        errors.append(f"{full}={_show(value)}: expected a finite number")
        return
    if leaf in LIMIT_BATCHES and _num(value) and not (value >= 0 if isinstance(value, int) else 0 <= value <= 1):
        errors.append(f"{full}={_show(value)}: expected a number of batches (integer >= 0) or a fraction of them "
                      f"(0.0 to 1.0)")
        return
    for r in ranges:
        if not r.holds(value):
            errors.append(f"{full}={_show(value)}: expected {r.describe(kind)}")
            return


def _show(value: Any) -> str:
    return "null" if value is None else str(value)


def _walk_targets(node: Any, path: str):
    """(path, node) of every mapping with a `_target_` at or below `node`, not descending into targets."""
    if isinstance(node, dict):
        if "_target_" in node:
            yield path, node
            return
        for k, v in node.items():
            yield from _walk_targets(v, f"{path}.{k}")


TASK_REFERENCE = re.compile(r"(?:\$\{|oc\.select:)task\.(\w+)")


def check_task(task: dict, raw: DictConfig, errors: list[str]) -> None:
    """Task-level keys: the fixed ones, and those some value of this config reads (`head: ${task.head}`)."""
    text = OmegaConf.to_yaml(raw, resolve=False)
    read_by_interpolation = set(TASK_REFERENCE.findall(text))
    for key in task:
        if key not in TASK_KEYS and key not in read_by_interpolation:
            known = sorted(set(TASK_KEYS) | read_by_interpolation)
            errors.append(f"task.{key}: not an option of task={task.get('name')}; its options: {', '.join(known)} "
                          f"(data and task-module options go under task.data.* and task.module.*)")
    for key in ("monitor_mode", "test_weights"):
        if task.get(key) is not None:
            check_value(f"task.{key}", task[key], errors)
    decay = task.get("ema_decay")
    if decay is not None and not (_num(decay) and 0 < decay < 1):
        errors.append(f"task.ema_decay={_show(decay)}: expected a number > 0 and < 1")


def check_contract(values: dict, errors: list[str]) -> None:
    """The data -> model -> task contract, from the classes the config names (nothing is built)."""
    task, model = values.get("task") or {}, values.get("model") or {}
    module = task.get("module") or {}
    if "_target_" not in module or "_target_" not in model:
        return
    data_cls = _import(task["data"]["_target_"]) if isinstance(task.get("data"), dict) and "_target_" in task["data"] else None
    errors.extend(contract_problems(
        data_cls, _import(model["_target_"]), _import(module["_target_"]), model_name=str(model.get("name")),
        task_name=str(task.get("name")), model_set=[k for k in model if not k.startswith("_")],
        task_set=[k for k in module if not k.startswith("_")]))


def check_horizon(values: dict, errors: list[str]) -> None:
    """A run without a set length (max_epochs=-1, no max_steps) cannot have a schedule that needs one."""
    trainer, scheduler = values.get("trainer") or {}, values.get("scheduler") or {}
    if trainer.get("max_epochs") != -1 or (trainer.get("max_steps") or -1) != -1 or "_target_" not in scheduler:
        return
    if scheduler.get("interval", "step") == "epoch" or getattr(_import(scheduler["_target_"]), "needs_horizon", False):
        errors.append(f"trainer.max_epochs=-1: scheduler={scheduler['_target_'].rsplit('.', 1)[-1]} needs the "
                      f"run's length; give trainer.max_steps or use scheduler=constant")


def check_top_level(cfg: dict, errors: list[str]) -> None:
    seed = cfg.get("seed")
    if seed is not None and not (isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed < 2**32):
        errors.append(f"seed={_show(seed)}: expected an integer from 0 to 4294967295 (or null: a random seed)")
    threads = cfg.get("threads")
    if threads is not None and not (isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1):
        errors.append(f"threads={_show(threads)}: expected an integer >= 1 (or null: torch's default)")
    if not isinstance(cfg.get("skip_done", False), bool):
        errors.append(f"skip_done={_show(cfg.get('skip_done'))}: expected true or false")
    for key in cfg:
        if key not in TOP_LEVEL:
            errors.append(f"{key}: not a leedl option; top-level options: {', '.join(sorted(TOP_LEVEL - {'hydra'}))}")
    root = cfg.get("output_root")
    if root is not None:
        problem = unwritable(Path(str(root)))
        if problem:
            errors.append(f"output_root={root}: {problem}; give a folder you can write to "
                          f"(output_root=... or LEEDL_OUTPUT_DIR)")


def unwritable(path: Path) -> str | None:
    """Why runs cannot be written under `path` (None: they can). Creates nothing that stays."""
    path = path.expanduser().absolute()
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is a file, not a folder"
    try:
        tempfile.TemporaryDirectory(dir=probe).cleanup()
    except OSError as err:
        return f"cannot create folders in {probe} ({err.strerror or err})"
    return None


def check_hardware(cfg: dict, errors: list[str]) -> None:
    trainer = cfg.get("trainer") or {}
    accelerator = str(trainer.get("accelerator", "cpu"))
    if accelerator not in ("gpu", "cuda"):
        return
    import torch

    visible = torch.cuda.device_count()
    devices = trainer.get("devices", 1)
    wanted = len(devices) if isinstance(devices, (list, tuple)) else (1 if devices in ("auto", -1) else devices)
    if isinstance(wanted, int) and wanted > visible:
        where = os.environ.get("CUDA_VISIBLE_DEVICES")
        seen = f"{visible} visible" + (f" (CUDA_VISIBLE_DEVICES={where})" if where is not None else "")
        errors.append(f"trainer.accelerator={accelerator} with trainer.devices={devices}: asks for {wanted} GPU(s), "
                      f"this machine has {seen}. Use trainer=cpu (or trainer=ddp_sim to try DDP on CPU processes)")


def check_compatible(cfg: DictConfig) -> None:
    """Refuse a task/model pairing the task does not list, before anything is built or trained."""
    allowed = cfg.task.get("models")
    model_name = cfg.model.get("name")
    if allowed and model_name not in allowed:
        raise IncompatibleModelError(
            f"task={cfg.task.name} cannot train model={model_name}. Models that fit this task: "
            f"{', '.join(allowed)} (e.g. `leedl run task={cfg.task.name} model={allowed[0]}`)."
        )


def interpolation_sources(node: Any, path: str = "") -> dict[str, str]:
    """{key path: referenced key} for the values that are a plain `${other.key}` interpolation."""
    if isinstance(node, DictConfig):
        node = OmegaConf.to_container(node, resolve=False)
    out: dict[str, str] = {}
    if isinstance(node, dict):
        for key, value in node.items():
            full = f"{path}.{key}" if path else str(key)
            ref = re.fullmatch(r"\$\{([\w.]+)\}", value) if isinstance(value, str) else None
            if ref:
                out[full] = ref.group(1)
            else:
                out.update(interpolation_sources(value, full))
    return out


def problems(cfg: DictConfig) -> list[str]:
    """Every problem of a composed config, one line each (empty: it can run)."""
    check_compatible(cfg)
    plain = OmegaConf.create({k: cfg[k] for k in cfg if k != "hydra"})
    errors: list[str] = []
    check_top_level({k: plain[k] if k not in ("task", "model", "optimizer", "scheduler", "trainer", "logger",
                                               "callbacks", "report") else None for k in plain}, errors)
    if plain.get("seed") is None:   # chosen at random when the run starts; any integer stands for it here
        plain.seed = 0
    try:
        values = OmegaConf.to_container(plain, resolve=True)
    except Exception as err:   # an interpolation that does not resolve
        return errors + [f"the config does not resolve: {err}"]
    sources = interpolation_sources(plain)
    for group in ("model", "optimizer", "scheduler", "trainer", "logger", "callbacks", "task"):
        for path, node in _walk_targets(values.get(group), group):
            provided = contract_needs(node) if path in ("model", "task.module") else ()
            check_node(path, node, errors, LEEDL_KEYS.get(path, set()) | set(provided), sources,
                       RUNNER_KEYS if path == "task.module" else ())
    if isinstance(values.get("task"), dict):
        check_task(values["task"], plain, errors)
    if not errors:
        check_contract(values, errors)
    check_horizon(values, errors)
    check_hardware(values, errors)
    return list(dict.fromkeys(errors))   # a value read by several nodes is reported once


def contract_needs(node: dict) -> list[str]:
    """The `Provided` parameters a node sets (reported by the contract check, not as bad values here)."""
    from leedl_cli.contract import needs

    return [k for k in needs(_import(node["_target_"])) if k in node]


def validate(cfg: DictConfig) -> None:
    errors = problems(cfg)
    if errors:
        raise ConfigError("\n".join(errors))
