"""`leedl run`'s check before Hydra starts: compose what the command line asks for and validate it.

Hydra creates a run (or sweep) directory before the job's code runs; checking here first means a bad value
leaves nothing behind. For a sweep (`-m`, or a preset that sweeps) every value of every swept key is
checked: the base overrides plus one swept value at a time (the sum of the values, not their product).
Values chosen by a search sweeper (Optuna's `interval(...)`) are left to it.
"""
from __future__ import annotations

from omegaconf import DictConfig

# Hydra flags after which leedl does not compose the config itself (Hydra prints help, the config, ...)
HYDRA_FLAGS_WITHOUT_RUN = ("-h", "--help", "--hydra-help", "-c", "--cfg", "-i", "--info", "-p", "--package",
                           "-sc", "--shell-completion", "-cp", "--config-path", "-cn", "--config-name",
                           "-cd", "--config-dir", "--resolve")


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
        raise UsageError(str(err).split("\nConfig search path:")[0].strip()) from None


def _swept(overrides: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """(overrides that are not sweeps, {key: [each value as an override]} for the discrete sweeps)."""
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
            values = list(o.sweep_string_iterator())
        except Exception:   # interval(...) and the like: the sweeper picks the values
            continue
        prefix = text.split(o.key_or_group, 1)[0]   # keep + / ++ / ~
        sweeps[o.key_or_group] = [f"{prefix}{o.key_or_group}={v}" for v in values]
    return fixed, sweeps


def job_configs(args: list[str]) -> list[DictConfig]:
    """The composed configs that stand for every job of this command line (one for a single run)."""
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
        return [base]
    return [_compose(fixed + [value]) for values in sweeps.values() for value in values]


def preflight(args: list[str]) -> None:
    """Raise UsageError with every problem of the jobs this command line would run (one line each)."""
    if any(a.split("=", 1)[0] in HYDRA_FLAGS_WITHOUT_RUN for a in args):
        return
    from leedl_cli.errors import LeedlError
    from leedl_cli.validate import problems

    found: list[str] = []
    for cfg in job_configs(args):
        try:
            errors = problems(cfg)
        except LeedlError as err:
            errors = [str(err)]
        found += [e for e in errors if e not in found]
    if found:
        raise UsageError("\n".join(found))
