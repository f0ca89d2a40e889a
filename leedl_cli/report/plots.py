"""The report's plots: each metric against the swept parameter, training curves from metrics.csv, and the plot
plugins an experiment names in `report.plots` (`{fn: "module:function", option: value, ...}`, called as
`function(runs, out_dir, **options)` and returning the paths it wrote).

A parameter whose values are names (optimizers, models) is drawn as points with error bars at separate places,
without a line between them (there is no order to join); a numeric parameter as a line. Every figure says what it
shows: its title is the book's claim about the metric (else the metric and the parameter), and when the y axis
does not start at 0 its label says where it starts. A group of one run is a point without an error bar.
"""
from __future__ import annotations

import csv
import difflib
import importlib
import inspect
import pkgutil
import statistics
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable

from leedl_cli.errors import LeedlError
from leedl_cli.jobs import split_override as override_key
from leedl_cli.report.runs import grouping, matches, metric, readable, run_value


class PlotPluginError(LeedlError):
    """A `report.plots` entry that names no plot function, or options the function does not take."""


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _as_number(value: Any):
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def _suggest(name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(name, names, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def resolve_plot(spec: Any) -> tuple[Callable, dict]:
    """(the function, its options) of one `report.plots` entry; PlotPluginError (one line) when it names none."""
    if not isinstance(spec, Mapping) or "fn" not in spec:
        raise PlotPluginError(f"report.plots: {spec!r}: expected {{fn: \"module:function\", ...options}}")
    options = {str(k): v for k, v in spec.items() if k != "fn"}
    target = str(spec["fn"])
    module_name, sep, fn_name = target.partition(":")
    if not (sep and module_name and fn_name):
        raise PlotPluginError(f"report.plots: fn={target!r}: expected \"module:function\" "
                              f"(e.g. leedl_cli.analysis.surfaces:plot_trajectories)")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and module_name.startswith(err.name):
            parent = module_name.rpartition(".")[0]
            try:
                siblings = [f"{parent}.{m.name}" for m in pkgutil.iter_modules(importlib.import_module(parent).__path__)]
            except (ImportError, AttributeError):
                siblings = []
            raise PlotPluginError(f"report.plots: fn={target!r}: no module {module_name}"
                                  f"{_suggest(module_name, siblings)}") from None
        raise PlotPluginError(f"report.plots: fn={target!r}: its module does not import: {err}") from None
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        names = [n for n, v in vars(module).items() if inspect.isfunction(v) and not n.startswith("_")
                 and v.__module__ == module.__name__]
        raise PlotPluginError(f"report.plots: fn={target!r}: {module_name} has no function {fn_name}"
                              f"{_suggest(fn_name, names)}; its functions: {', '.join(names) or 'none'}")
    try:
        inspect.signature(fn).bind(None, None, **options)
    except TypeError as err:
        raise PlotPluginError(f"report.plots: fn={target!r} with {options}: {err}") from None
    except ValueError:   # no signature to read (a builtin): called as it is
        pass
    return fn, options


def extra_plots(runs: list[dict], out_dir: Path, cfg: dict) -> list[Path]:
    """The plot plugins an experiment names in `report.plots`."""
    paths: list[Path] = []
    for spec in cfg.get("plots") or []:
        fn, options = resolve_plot(spec)
        paths += list(fn(readable(runs), out_dir, **options) or [])
    return paths


def title_for(claims: list[dict], metric_name: str, x: str, width: int = 80, lines: int = 5) -> str:
    """The book's claims about `metric_name` along `x` (with their verdicts), else what the figure shows.

    A claim is never cut in half: claims that do not fit in `lines` lines are counted instead, so no verdict
    is lost from the end of a title that runs out of room.
    """
    said = [c["claim"] + (f" ({c['verdict']})" if c.get("verdict") else "") for c in claims
            if c.get("metric") == metric_name and c.get("claim") and c.get("by") in (None, x)]
    if not said:
        return f"{metric_name} by {x}"
    shown: list[str] = []
    for n, claim in enumerate(said):
        wrapped = textwrap.wrap(claim, width)
        last = n == len(said) - 1   # else keep a line free to count the claims that follow
        if len(wrapped) > lines - len(shown) - (not last):
            shown.append(f"and {len(said) - n} more claim(s): see the results page")
            break
        shown += wrapped
    return "\n".join(shown)


def _state_y_axis(ax, values: list[float], name: str) -> None:
    """Non-negative values on an axis that does not start at 0: the label says where it starts."""
    bottom, top = ax.get_ylim()
    if values and min(values) >= 0 and bottom > 0:
        ax.set_ylabel(f"{name}\n(y axis from {bottom:.4g} to {top:.4g}, not from 0)")
    else:
        ax.set_ylabel(name)


def plot_metric_vs_param(runs: list[dict], out_dir: Path, x: str, metrics: list[str], claims: list[dict] | None = None,
                         prefix: str = "") -> list[Path]:
    """Each metric (mean ± std over seeds; every run a small dot) against the swept parameter `x`; runs that differ
    in other overrides are separate series."""
    plt = _plt()
    paths = []
    ok = [r for r in readable(runs) if r.get("status") == "ok"]
    for m in metrics:
        drawn = [r for r in ok if metric(r, m) is not None and run_value(r, x) is not None]
        # an override every drawn run shares (experiment=..., budget=...) names no series: it stays off the legend
        shared = set.intersection(*(set(r.get("overrides", [])) for r in drawn)) if drawn else set()
        series: dict[str, dict[Any, list[float]]] = {}
        for r in drawn:
            rest = " ".join(o for o in r.get("overrides", []) if grouping(override_key(o)[0])
                            and override_key(o)[0] != x and o not in shared) or m
            series.setdefault(rest, {}).setdefault(_as_number(run_value(r, x)), []).append(metric(r, m))
        if not series:
            continue
        keys_all = [k for pts in series.values() for k in pts]
        numeric = all(isinstance(k, float) for k in keys_all)
        categories = [] if numeric else list(dict.fromkeys(
            str(k) for k in sorted(keys_all, key=lambda k: (isinstance(k, str), str(k)))))
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        values_drawn: list[float] = []
        for i, (label, points) in enumerate(series.items()):
            keys = sorted(points, key=lambda k: (isinstance(k, str), k if numeric else str(k)))
            means = [statistics.fmean(points[k]) for k in keys]
            stds = [statistics.stdev(points[k]) if len(points[k]) > 1 else float("nan") for k in keys]
            if numeric:
                xs = keys
                ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, label=label)
            else:   # names: no order between them, so no line; series side by side around each name
                shift = (i - (len(series) - 1) / 2) * min(0.15, 0.6 / len(series))
                xs = [categories.index(str(k)) + shift for k in keys]
                ax.errorbar(xs, means, yerr=stds, fmt="o", linestyle="none", capsize=4, label=label)
            for xpos, k in zip(xs, keys):
                ax.scatter([xpos] * len(points[k]), points[k], s=8, alpha=0.35, color="grey", zorder=1)
            values_drawn += [v for k in keys for v in points[k]]
        if numeric and all(k > 0 for k in keys_all) and max(keys_all) / min(keys_all) > 50:
            ax.set_xscale("log")
        if not numeric:
            ax.set_xticks(range(len(categories)), categories, rotation=20 if max(map(len, categories)) > 8 else 0)
            ax.set_xlim(-0.5, len(categories) - 0.5)
        ax.set_xlabel(x)
        _state_y_axis(ax, values_drawn, m)
        # the title names the claims about these runs only (a claim `where: {task: nli}` is not on the QA plot)
        about = [c for c in claims or [] if any(matches(r, c.get("where") or {}) for r in drawn)]
        ax.set_title(title_for(about, m, x), fontsize=8)
        ax.grid(alpha=0.3)
        ax.text(0.99, 0.01, "mean ± std over seeds; no bar: one run", transform=ax.transAxes, ha="right",
                va="bottom", fontsize=6, color="grey")
        if len(series) > 1:
            ax.legend(fontsize=7)
        fig.tight_layout()
        path = out_dir / f"{prefix}{m.replace('/', '_')}_vs_{x.replace('/', '_')}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths


def read_curve(run_dir: Path, name: str, x: str = "step") -> tuple[list[float], list[float]]:
    path = Path(run_dir) / "metrics.csv"
    xs, ys = [], []
    if not path.is_file():
        return xs, ys
    with open(path) as f:
        for row in csv.DictReader(f):
            if row.get(name) not in (None, "") and row.get(x) not in (None, ""):
                xs.append(float(row[x]))
                ys.append(float(row[name]))
    return xs, ys


def plot_curves(runs: list[dict], out_dir: Path, metrics: list[str], x: str = "step", prefix: str = "") -> list[Path]:
    """Training curves from metrics.csv: the mean over a group's seeds per metric (one figure per metric)."""
    plt = _plt()
    paths = []
    groups: dict[str, list[dict]] = {}
    for r in readable(runs):
        groups.setdefault(r["group"], []).append(r)
    for m in metrics:
        fig, ax = plt.subplots(figsize=(6, 4))
        drawn: list[float] = []
        for label, members in groups.items():
            curves = [c for c in (read_curve(r["_dir"], m, x) for r in members) if c[0]]
            if not curves:
                continue
            length = min(len(c[0]) for c in curves)
            ys = [statistics.fmean(c[1][i] for c in curves) for i in range(length)]
            ax.plot(curves[0][0][:length], ys, label=f"{label} (n={len(curves)})")
            drawn += ys
        if not drawn:
            plt.close(fig)
            continue
        ax.set_xlabel(x)
        _state_y_axis(ax, drawn, m)
        ax.set_title(f"{m} by {x} (mean over seeds)", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = out_dir / f"{prefix}curve_{m.replace('/', '_')}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths
