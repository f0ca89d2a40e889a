"""`leedl run`'s check before Hydra starts: compose what the command line asks for and validate it.

Hydra creates a run (or sweep) directory before the job's code runs; checking here first means a bad value
leaves nothing behind. For a sweep (`-m`, or a preset that sweeps) every value of every swept key is
checked against the base overrides, one swept key at a time (the sum of the values, not their product), and
the cost goes by distinct values, not by jobs:

- a value that changes which config files compose the config (a config group option such as `optimizer=adam`,
  a deletion `~key`, Hydra's own keys) or that sets a whole node (a list, a mapping) is composed: one config per
  value;
- a plain value (`optimizer.lr=1e-3,1e-2`) is composed once, with the key's first value; each other value is put
  in its place in that config and the config validated again, without composing;
- the seed is composed once; its other values are checked by the rule of the top-level `seed` (every seed of a
  valid config that passes it is as valid as the first: the seed only reaches a node as an integer).

Values chosen by a search sweeper (Optuna's `interval(...)`) are left to it. The plot plugins an experiment
names in `report.plots` are resolved here too, so a misspelt one stops the command before any run, not after
the sweep.
"""
from __future__ import annotations

import copy
from typing import Any

from omegaconf import DictConfig, OmegaConf

# Hydra flags after which leedl does not compose the config itself (Hydra prints help, the config, ...)
HYDRA_FLAGS_WITHOUT_RUN = ("-h", "--help", "--hydra-help", "-c", "--cfg", "-i", "--info", "-p", "--package",
                           "-sc", "--shell-completion", "-cp", "--config-path", "-cn", "--config-name",
                           "-cd", "--config-dir", "--resolve")
SEED = "seed"
_STRUCTURAL = object()


class UsageError(Exception):
    """The command line cannot run: the message says why (exit status 2)."""


def _compose(overrides: list[str]) -> DictConfig:
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException

    from leedl_cli import resolvers  # noqa: F401
    from leedl_cli.paths import conf_dir

    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            return compose(config_name="config", overrides=overrides, return_hydra_config=True)
    except HydraException as err:   # an unknown option lists the valid ones; the search path is noise here
        message = str(err).split("\nConfig search path:")[0].strip()
        raise UsageError(_suggest(message, overrides) or message) from None


def _suggest(message: str, overrides: list[str]) -> str | None:
    """For a key the config does not have: "did you mean ...", from the config composed without it."""
    from leedl_cli.cli import GROUPS
    from leedl_cli.suggest import did_you_mean, unknown_key

    key = unknown_key(message)
    if key is None:
        return None
    rest = [o for o in overrides if o.lstrip("+~").partition("=")[0] != key]
    try:
        cfg = _compose(rest) if rest != overrides else None
    except UsageError:
        return None
    return did_you_mean(key, cfg, GROUPS) if cfg is not None else None


def _plain(element: Any) -> Any:
    """The value a plain override sets (a quoted string as its text); _STRUCTURAL for a list or a mapping."""
    from hydra.core.override_parser.types import QuotedString

    if isinstance(element, QuotedString):
        return element.text
    if element is None or isinstance(element, (str, int, float, bool)):
        return element
    return _STRUCTURAL


def _is_group(key: str) -> bool:
    from leedl_cli.paths import conf_dir

    return "/" in key or key.startswith("hydra") or (conf_dir() / key).is_dir()


def _swept(overrides: list[str]) -> tuple[list[str], dict[str, list[tuple[str, Any]]]]:
    """(overrides that are not sweeps, {key: [(each value as an override, its plain value or _STRUCTURAL)]})."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as err:
        raise UsageError(str(err).strip()) from None
    fixed, sweeps = [], {}
    for text, o in zip(overrides, parsed):
        if not o.is_sweep_override():
            fixed.append(text)
            continue
        try:
            strings, elements = list(o.sweep_string_iterator()), list(o.sweep_iterator())
        except Exception:   # interval(...) and the like: the sweeper picks the values
            continue
        prefix = text.split(o.key_or_group, 1)[0]   # keep + / ++ / ~
        structural = o.is_delete() or _is_group(o.key_or_group)
        distinct = dict.fromkeys(zip(strings, (_STRUCTURAL if structural else _plain(e) for e in elements)))
        sweeps[o.key_or_group] = [(f"{prefix}{o.key_or_group}={s}", v) for s, v in distinct]
    return fixed, sweeps


def _problems(cfg: DictConfig) -> list[str]:
    from leedl_cli.errors import LeedlError
    from leedl_cli.validate import problems

    try:
        return problems(cfg)
    except LeedlError as err:
        return [str(err)]


def _seed_problems(value: Any) -> list[str]:
    from leedl_cli.validate import check_top_level

    errors: list[str] = []
    check_top_level({SEED: value}, errors)
    return errors


def _plot_problems(cfg: DictConfig) -> list[str]:
    from leedl_cli.errors import LeedlError
    from leedl_cli.report.plots import resolve_plot

    report = cfg.get("report")
    specs = OmegaConf.to_container(report, resolve=False).get("plots") if isinstance(report, DictConfig) else None
    found = []
    for spec in specs or []:
        try:
            resolve_plot(spec)
        except LeedlError as err:
            found.append(str(err))
    return found


def _sweep_problems(fixed: list[str], key: str, values: list[tuple[str, Any]]) -> list[str]:
    """Every problem of the jobs that take each value of one swept key (with the command's fixed overrides)."""
    found: list[str] = []

    def add(lines: list[str]) -> None:
        found.extend(line for line in lines if line not in found)

    plain = [(text, v) for text, v in values if v is not _STRUCTURAL]
    for text in [text for text, v in values if v is _STRUCTURAL]:
        cfg = _compose(fixed + [text])
        add(_problems(cfg) + _plot_problems(cfg))
    if not plain:
        return found
    cfg = _compose(fixed + [plain[0][0]])   # composed once; every other value takes the first one's place
    add(_problems(cfg) + _plot_problems(cfg))
    for text, value in plain[1:]:
        if key == SEED:
            add(_seed_problems(value))
            continue
        other = copy.deepcopy(cfg)
        try:
            OmegaConf.update(other, key, value, merge=True, force_add=True)
        except Exception as err:   # a value that does not fit the node (a scalar where a mapping is)
            add([f"{text}: {err}".splitlines()[0]])
            continue
        add(_problems(other))
    return found


def check(args: list[str]) -> tuple[DictConfig, list[str]]:
    """(the config of the command line's fixed overrides, every problem of the jobs it would run)."""
    multirun = any(a in ("-m", "--multirun") for a in args)
    overrides = [a for a in args if a not in ("-m", "--multirun")]
    fixed, sweeps = _swept(overrides)
    if sweeps and not multirun:
        raise UsageError(f"{', '.join(sweeps)}: several values given without -m; run a sweep with "
                         f"`leedl run -m {' '.join(overrides)}`, or give one value")
    base = _compose(fixed)
    if base.hydra.mode is not None and str(base.hydra.mode).endswith("MULTIRUN"):
        multirun = True
    if multirun:   # a preset's own sweep (hydra.sweeper.params); the command line wins for the same key
        params = base.hydra.sweeper.get("params") or {}
        _, preset = _swept([f"{k}={v}" for k, v in params.items() if k not in sweeps])
        sweeps = {**preset, **sweeps}
    if not sweeps:
        return base, _problems(base) + _plot_problems(base)
    found: list[str] = []
    for key, values in sweeps.items():
        found += [line for line in _sweep_problems(fixed, key, values) if line not in found]
    return base, found


def preflight(args: list[str]) -> DictConfig | None:
    """Raise UsageError with every problem of the jobs this command line would run (one line each); return the
    config its fixed overrides compose (None when Hydra only prints something and runs nothing)."""
    if any(a.split("=", 1)[0] in HYDRA_FLAGS_WITHOUT_RUN for a in args):
        return None
    base, found = check(args)
    if found:
        raise UsageError("\n".join(found))
    return base
