"""Which YAML values fit which annotated parameters: the type half of the config check (leedl_cli.validate)."""
from __future__ import annotations

import inspect
import os
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig, ListConfig

from leedl_cli.contract import hints_of


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


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


def _strip(hint: Any) -> Any:
    """The type of an annotation without its `Annotated` extras (also inside `X | None`)."""
    if typing.get_origin(hint) is typing.Annotated:
        return _strip(typing.get_args(hint)[0])
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = tuple(_strip(a) for a in typing.get_args(hint))
        return typing.Union[args]
    return hint


def parameters(target: Callable) -> tuple[dict[str, inspect.Parameter], dict[str, Any], bool]:
    """(parameters, annotations with their extras, takes any keyword) of a constructor or function, following
    **kwargs to the bases."""
    params: dict[str, inspect.Parameter] = {}
    hints: dict[str, Any] = {}
    fns = [c.__init__ for c in inspect.getmro(target) if "__init__" in vars(c)] if inspect.isclass(target) else [target]
    for fn in fns:
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):
            return params, hints, True
        fn_hints = hints_of(fn)
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


