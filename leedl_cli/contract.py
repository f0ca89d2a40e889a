"""The contract between data, model and task: who provides what, who needs what.

- A data module declares what it provides by the return type of its `provides()` method: a frozen dataclass
  (`ImageSpec`, `ParallelTextSpec`, ...). Its fields are the provided keys (class counts, channels, vocabularies
  and pad ids, callables that hand a task its evaluation sets, an environment factory, ...).
- A model and a task module declare what they need from the data in their constructor's signature: each such
  parameter is annotated `Provided[T]`. Their other parameters come from the config.
- `run.py` wires them: every needed key must be provided and every provided key must be needed by the model or
  the task, otherwise the run is refused before anything is built, with one line naming the key. A provided
  field declared with `offered()` may go unused (an optional extra, e.g. a tokenizer only some models read).

Ranges and choices live with the parameter they constrain: `Annotated[float, Range(0, 1)]`, or a `Literal`
alias whose values are also the module's constant (`Version = Literal["v0", "v1"]; VERSIONS = get_args(Version)`).
A class whose options constrain each other declares `config_problems(options) -> list[str]` (a classmethod
given the node's values with the signature's defaults filled in); the validator calls it before the run.
"""
from __future__ import annotations

import dataclasses
import inspect
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Annotated, Any, Callable, TypeVar

from leedl_cli.errors import LeedlError

T = TypeVar("T")


class ContractError(LeedlError):
    """A model or task needs a key no data module provides, or data provides a key nobody uses."""


class _FromData:
    def __repr__(self) -> str:
        return "FROM_DATA"


FROM_DATA = _FromData()
Provided = Annotated[T, FROM_DATA]
"""`num_classes: Provided[int]`: filled by run.py from the data module's `provides()`, never from the config."""

# parameters run.py itself passes to every task module (never set in the config)
RUNNER_KEYS = ("model", "optimizer", "scheduler", "run_dir")


def offered(**kwargs) -> Any:
    """A dataclass field of a data spec that the model or task may leave unused."""
    metadata = dict(kwargs.pop("metadata", {}) or {}, offered=True)
    return field(metadata=metadata, **kwargs)


@dataclass(frozen=True)
class Range:
    """A numeric range for a parameter: `Annotated[float, Range(0, 1)]`; `low_open`/`high_open` exclude the
    bounds; `also` lists single extra values that are allowed (`max_epochs`: -1 = no limit)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    also: tuple = ()

    def holds(self, value: Any) -> bool:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return True   # the type check reports other kinds
        if value in self.also:
            return True
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
            return False
        return True

    def describe(self, kind: str = "a number") -> str:
        """`a number from 0 to 1`, `an integer >= 1 (or -1)`, `a number > 0 and <= 1`, ..."""
        def show(x: float) -> str:
            return f"{x:g}"
        if self.low is not None and self.high is not None and not (self.low_open or self.high_open):
            text = f"{kind} from {show(self.low)} to {show(self.high)}"
        else:
            parts = []
            if self.low is not None:
                parts.append(f"{'>' if self.low_open else '>='} {show(self.low)}")
            if self.high is not None:
                parts.append(f"{'<' if self.high_open else '<='} {show(self.high)}")
            text = f"{kind} " + " and ".join(parts) if parts else f"a finite {kind.split()[-1]}"
        if self.also:
            text += " (or " + ", ".join(str(a) for a in self.also) + ")"
        return text


# the ranges used everywhere
Positive = Range(0, low_open=True)
NonNegative = Range(0)
AtLeastOne = Range(1)
Probability = Range(0, 1)
OpenProbability = Range(0, 1, low_open=True)   # (0, 1]: top_p, a fraction of the data


def ranges_of(hint: Any) -> list[Range]:
    """The `Range`s attached to an annotation (through `X | None` and nested `Annotated`)."""
    found: list[Range] = []
    if typing.get_origin(hint) is Annotated:
        found += [m for m in hint.__metadata__ if isinstance(m, Range)]
        hint = typing.get_args(hint)[0]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            found += ranges_of(arg)
    return found


def is_provided(hint: Any) -> bool:
    return typing.get_origin(hint) is Annotated and any(m is FROM_DATA for m in hint.__metadata__)


def hints_of(fn: Callable) -> dict[str, Any]:
    """Type hints with their `Annotated` extras (empty where they do not evaluate)."""
    try:
        return typing.get_type_hints(fn, include_extras=True)
    except Exception:
        return {}


def _init_functions(target: Any) -> list[Callable]:
    if inspect.isclass(target):
        return [c.__init__ for c in inspect.getmro(target) if "__init__" in vars(c) and c is not object]
    return [target]


def needs(target: Any) -> dict[str, Any]:
    """{parameter: type} of the `Provided[...]` parameters of a class's constructor (and its bases') or a
    function."""
    out: dict[str, Any] = {}
    for fn in _init_functions(target):
        for name, hint in hints_of(fn).items():
            if is_provided(hint):
                out.setdefault(name, typing.get_args(hint)[0])
    return out


def spec_type(datamodule_cls: type) -> type | None:
    """The dataclass a data module class provides (the return annotation of its `provides`), or None."""
    provides = getattr(datamodule_cls, "provides", None)
    if provides is None:
        return None
    ret = hints_of(provides).get("return")
    if ret is None or not dataclasses.is_dataclass(ret):
        raise ContractError(f"{datamodule_cls.__qualname__}.provides must declare a dataclass as its return type")
    return ret


def spec_fields(spec: type) -> dict[str, bool]:
    """{field: may go unused} of a data spec dataclass."""
    return {f.name: bool(f.metadata.get("offered")) for f in dataclasses.fields(spec)}


def contract_problems(data_cls: type | None, model_target: Any, task_target: Any, model_name: str = "?",
                      task_name: str = "?", model_set: typing.Iterable[str] = (),
                      task_set: typing.Iterable[str] = ()) -> list[str]:
    """Every break of the contract, one line each, from the classes alone (nothing is built).

    `model_set` / `task_set`: the keys the config sets on the model / task-module node (a `Provided` parameter
    set there is refused: the data decides it)."""
    spec = spec_type(data_cls) if data_cls is not None else None
    provided = spec_fields(spec) if spec is not None else {}
    model_needs = needs(model_target) if model_target is not None else {}
    task_needs = needs(task_target) if task_target is not None else {}
    source = f"the data of task={task_name}" + (f" ({spec.__name__})" if spec is not None else "")
    errors = []
    for who, wanted, node, set_keys in (("model", model_needs, f"model={model_name}", set(model_set)),
                                        ("task.module", task_needs, f"task={task_name}", set(task_set))):
        for key in wanted:
            if key in set_keys:
                errors.append(f"{who}.{key}: provided by {source}; it cannot be set in the config")
            elif key not in provided:
                have = ", ".join(provided) or "nothing"
                errors.append(f"{who}.{key}: {node} needs {key!r}, which {source} does not provide "
                              f"(it provides: {have})")
    used = set(model_needs) | set(task_needs)
    for key, optional in provided.items():
        if not optional and key not in used:
            errors.append(f"task.data: {source} provides {key!r}, which neither model={model_name} nor task "
                          f"{task_name} uses")
    return errors


def wire(spec: Any, model_target: Any, task_target: Any) -> tuple[dict, dict]:
    """(model kwargs, task kwargs) taken from a data spec instance by the `Provided` parameters."""
    values = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)} if spec is not None else {}
    model_kwargs = {k: values[k] for k in needs(model_target) if k in values}
    task_kwargs = {k: values[k] for k in needs(task_target) if k in values}
    return model_kwargs, task_kwargs
