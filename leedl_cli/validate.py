"""Every value of a composed config checked before anything runs.

The schema is the code itself: each config node with a `_target_` is checked against the signature of the
class or function it names (an unknown key is refused with the keys it accepts; a value must fit the
parameter's type annotation: `int`, `float`, `bool`, `str`, `Literal[...]`, lists, `X | None`, ...), and
ranges come from the rules below, by key name (a learning rate > 0, a batch size >= 1, a probability in
[0, 1], ...). Keys of the task node that are not passed to a constructor are the ones in `TASK_KEYS` or
keys some node of the config reads by interpolation (`${task.head}`). The top-level keys have their own
rules, and the hardware a trainer asks for must be there. A task's new options need no schema of their
own: annotate the constructor's parameters (tests/test_validate.py walks every shipped option).

A bad value stops `leedl run` with one message per bad key, naming the key, the value and what is
accepted; exit status 2; nothing is created.
"""
from __future__ import annotations

import functools
import inspect
import math
import os
import re
import tempfile
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig, ListConfig, OmegaConf

from leedl_cli.errors import IncompatibleModelError, LeedlError


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
}
TOP_LEVEL = {"task", "model", "optimizer", "scheduler", "trainer", "logger", "callbacks", "hydra", "seed", "data_dir",
             "output_root", "name", "tags", "report", "threads", "debug_mode", "resume", "skip_done", "wandb_id",
             "ckpt_path", "experiment", "debug", "channels_last"}


# ---- range rules, by key name ---------------------------------------------------------------------------------
def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _positive(v):
    return not _num(v) or v > 0


def _at_least_one(v):
    return not _num(v) or v >= 1


def _non_negative(v):
    return not _num(v) or v >= 0


def _probability(v):
    return not _num(v) or 0 <= v <= 1


def _epochs(v):   # Lightning: -1 = no limit
    return not _num(v) or v >= 1 or v == -1


def _limit_batches(v):   # an int count, or a float fraction of the batches
    return not _num(v) or (v >= 0 if isinstance(v, int) else 0 <= v <= 1)


def _devices(v):
    return not _num(v) or v >= 1 or v == -1


RULES: list[tuple[Callable[[str], bool], Callable[[Any], bool], str]] = [
    (lambda k: k in ("lr", "learning_rate", "max_lr", "eps"), _positive, "a number > 0"),
    (lambda k: k in ("batch_size", "eval_batch_size", "num_nodes", "log_every_n_steps", "accumulate_grad_batches",
                     "check_val_every_n_epoch", "train_size", "max_length", "threads", "num_heads", "heads",
                     "max_train_examples", "max_test_examples", "max_lines", "draws", "block_size"), _at_least_one,
     "an integer >= 1"),
    (lambda k: k in ("max_epochs", "max_steps"), _epochs, "an integer >= 1 (or -1: no limit)"),
    (lambda k: k == "devices", _devices, "an integer >= 1, -1 (all), 'auto' or a list of device ids"),
    (lambda k: k.startswith("limit_") and k.endswith("_batches"), _limit_batches,
     "a number of batches (integer >= 0) or a fraction of them (0.0 to 1.0)"),
    (lambda k: k in ("weight_decay", "num_workers", "gradient_clip_val", "val_size", "warmup_steps", "k"),
     _non_negative, "a number >= 0"),
    (lambda k: k in ("dropout", "probability", "label_smoothing", "momentum", "dampening", "p")
     or k.endswith(("_probability", "_fraction", "_dropout")), _probability, "a number from 0 to 1"),
]
# values a plain `str` parameter cannot take anything but
CHOICES = {
    "trainer.accelerator": ("cpu", "gpu", "cuda", "mps", "tpu", "hpu", "auto"),
    "task.monitor_mode": ("min", "max"),
}


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        parts = [_describe(a) for a in args if a is not type(None)]
        return " or ".join(dict.fromkeys(parts)) + (" (or null)" if type(None) in args else "")
    if origin is typing.Literal:
        return "one of " + ", ".join(str(a) for a in args)
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string", list: "a list",
             tuple: "a list", dict: "a mapping"}
    if hint in names:
        return names[hint]
    if origin in (list, tuple, Sequence):
        return "a list"
    if origin in (dict, Mapping):
        return "a mapping"
    return getattr(hint, "__name__", str(hint))


def _yaml_typed(hint: Any) -> bool:
    """Whether a value written in YAML can be of this type (not a tensor, module, callable, ...)."""
    origin = typing.get_origin(hint)
    return hint in (int, float, bool, str, list, tuple, dict, type(None), Path, os.PathLike) or origin in (
        typing.Literal, list, tuple, dict, Sequence, Mapping, typing.Union, types.UnionType)


def conforms(value: Any, hint: Any) -> bool:
    """Whether a config value can be given for a parameter annotated `hint` (unknown kinds: yes)."""
    if hint in (inspect.Parameter.empty, Any, object):
        return True
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):   # `float | Tensor`: a YAML value can only be the float
        typed = [a for a in args if _yaml_typed(a)]
        return any(conforms(value, a) for a in typed) if typed else True
    if hint is type(None):
        return value is None
    if origin is typing.Literal:
        return any(value == a and type(value) is type(a) for a in args) or value in args
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return _num(value)
    if hint is str:
        return isinstance(value, str)
    if hint in (list, tuple) or origin in (list, tuple, Sequence):
        return isinstance(value, (list, tuple, ListConfig))
    if hint is dict or origin in (dict, Mapping):
        return isinstance(value, (dict, DictConfig))
    if hint in (Path, os.PathLike):
        return isinstance(value, (str, Path))
    return True   # classes, callables, modules: built by leedl or Lightning, not typed in YAML


def parameters(target: Callable) -> tuple[dict[str, inspect.Parameter], dict[str, Any], bool]:
    """(parameters, type hints, takes any keyword) of a constructor or function, following **kwargs to the bases."""
    params: dict[str, inspect.Parameter] = {}
    hints: dict[str, Any] = {}
    fns = [c.__init__ for c in inspect.getmro(target) if "__init__" in vars(c)] if inspect.isclass(target) else [target]
    for fn in fns:
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):
            return params, hints, True
        try:
            fn_hints = typing.get_type_hints(fn)
        except Exception:   # an annotation that does not evaluate here: check the others
            fn_hints = {}
        for name, p in sig.parameters.items():
            if name in ("self", "cls") or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            params.setdefault(name, p)
            if name in fn_hints:
                hints.setdefault(name, fn_hints[name])
        if not any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
            return params, hints, False
        if not inspect.isclass(target) or fn is object.__init__:
            return params, hints, True
    return params, hints, True


def _import(target: str) -> Callable:
    import hydra

    try:
        return hydra.utils.get_object(target)
    except Exception as err:
        raise ConfigError(f"_target_={target}: cannot be imported ({err})") from None


def check_node(path: str, node: dict, errors: list[str], leedl_keys: set[str] = frozenset(),
               sources: dict[str, str] | None = None) -> None:
    """Check one `_target_` node (its values already resolved) against the signature it names.

    `sources`: {key path: the key it is interpolated from}; a bad value is reported once, where it is set."""
    target = _import(node["_target_"])
    params, hints, open_ended = parameters(target)
    for key, value in node.items():
        if key.startswith("_") or key in leedl_keys:
            continue
        full = f"{path}.{key}"
        if key not in params:
            if not open_ended:
                accepted = ", ".join(sorted(k for k in params if not k.startswith("_")))
                errors.append(f"{full}: {node['_target_']} has no option {key!r}; its options: {accepted}")
            continue
        source = (sources or {}).get(full)
        if source and any(e.startswith(f"{source}=") for e in errors):
            continue
        param = params[key]
        hint = hints.get(key, param.annotation)
        if value is None and param.default is None:
            continue
        if isinstance(value, dict) and "_target_" in value:
            check_node(full, value, errors, sources=sources)
            continue
        if not conforms(value, hint):
            errors.append(f"{full}={_show(value)}: expected {_describe(hint)}")
            continue
        check_value(full, value, errors)


def check_value(full: str, value: Any, errors: list[str]) -> None:
    leaf = full.rsplit(".", 1)[-1]
    if full in CHOICES and value not in CHOICES[full]:
        errors.append(f"{full}={_show(value)}: expected one of {', '.join(CHOICES[full])}")
        return
    if _num(value) and isinstance(value, float) and not math.isfinite(value):
        errors.append(f"{full}={_show(value)}: expected a finite number")
        return
    for applies, ok, accepted in RULES:
        if applies(leaf) and not ok(value):
            errors.append(f"{full}={_show(value)}: expected {accepted}")
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


@functools.lru_cache(maxsize=1)
def task_keys_read_by_options() -> frozenset[str]:
    """Task-level keys that some shipped option reads (conf/model/bert.yaml: `head: ${oc.select:task.head,...}`)."""
    from leedl_cli.paths import conf_dir

    return frozenset(k for path in conf_dir().rglob("*.yaml") for k in TASK_REFERENCE.findall(path.read_text()))


def check_task(task: dict, raw: DictConfig, errors: list[str]) -> None:
    """Task-level keys: the fixed ones, and those an option or this config reads (`head: ${task.head}`)."""
    text = OmegaConf.to_yaml(raw, resolve=False)
    read_by_interpolation = set(TASK_REFERENCE.findall(text)) | task_keys_read_by_options()
    for key in task:
        if key not in TASK_KEYS and key not in read_by_interpolation:
            known = sorted(set(TASK_KEYS) | read_by_interpolation)
            errors.append(f"task.{key}: not an option of task={task.get('name')}; its options: {', '.join(known)} "
                          f"(data and task-module options go under task.data.* and task.module.*)")
    for key in ("monitor_mode",):
        if key in task:
            check_value(f"task.{key}", task[key], errors)


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
            check_node(path, node, errors, LEEDL_KEYS.get(path, set()), sources)
    if isinstance(values.get("task"), dict):
        check_task(values["task"], plain, errors)
    check_hardware(values, errors)
    return errors


def validate(cfg: DictConfig) -> None:
    errors = problems(cfg)
    if errors:
        raise ConfigError("\n".join(errors))
