"""`leedl report PATH`: the table (mean ± std over seeds, per task), report.md/.csv, plots, the book's claims.

Report files go beside the runs, or to `--out DIR`; a folder that cannot be written still gets its table printed,
with one line saying why no file was written. Exit status 2 for what the user can fix (no such folder, no run
records, a metric no run has, a claim or plot plugin that does not parse); nothing is written then.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from leedl_cli.errors import LeedlError
from leedl_cli.jobs import split_override as override_key
from leedl_cli.report.claims import book_rows
from leedl_cli.report.plots import extra_plots, plot_curves, plot_metric_vs_param, resolve_plot
from leedl_cli.report.render import markdown, print_table, write_csv, write_markdown
from leedl_cli.report.runs import (
    by_task,
    choose_metrics,
    failures,
    grouping,
    known_metric,
    load_runs,
    metric_names,
    report_config,
    run_value,
    summarize,
)


def _error(message: str) -> int:
    print(f"leedl report: error: {message}", file=sys.stderr)
    return 2


def unwritable(folder: Path) -> str | None:
    """Why report files cannot be written in `folder` (None: they can). Leaves nothing behind."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        return f"{folder} is not writable ({err.strerror or err})"
    return None


def task_metrics(task_runs: list[dict], asked: list[str] | None, cfg: dict, only_task: bool) -> list[str]:
    """The metric columns of one task: with several tasks, only those its runs have (its own test/* if none)."""
    chosen = choose_metrics(task_runs, asked, cfg)
    if only_task:
        return chosen
    present = [m for m in chosen if known_metric(task_runs, m)]
    return present if (present or asked) else choose_metrics(task_runs, None, {})


def swept_parameter(runs: list[dict]) -> str | None:
    """The first override key whose value differs between the runs (the x of the metric plots)."""
    keys = [override_key(o)[0] for r in runs for o in r.get("overrides", []) if grouping(override_key(o)[0])]
    varying = [k for k in dict.fromkeys(keys) if len({str(run_value(r, k)) for r in runs}) > 1]
    return varying[0] if varying else None


def draw(tasks: dict[str, list[dict]], sections, claims, cfg: dict, args, plot_dir: Path) -> list[Path]:
    plot_dir.mkdir(exist_ok=True)
    plots: list[Path] = []
    for (task, metrics, rows), task_runs in zip(sections, tasks.values()):
        prefix = f"{task}_" if len(sections) > 1 else ""
        x = args.x or cfg.get("x") or (swept_parameter(task_runs) if len(rows) > 1 else None)
        if x:
            plots += plot_metric_vs_param(task_runs, plot_dir, x, metrics, claims, prefix=prefix)
        curves = args.curves or cfg.get("curves")
        if curves:
            plots += plot_curves(task_runs, plot_dir, curves, x=str(cfg.get("curves_x") or "step"), prefix=prefix)
    return plots + extra_plots([r for rs in tasks.values() for r in rs], plot_dir, cfg)


def report_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="leedl report", description=__doc__.splitlines()[0])
    parser.add_argument("path", help="a run directory, a sweep directory, or a folder of them")
    parser.add_argument("--metric", action="append", help="metric column(s) (default: from the experiment, else test/*)")
    parser.add_argument("--x", help="swept parameter to plot metrics against (default: from the experiment)")
    parser.add_argument("--curves", nargs="*", help="also draw training curves of these metrics from metrics.csv")
    parser.add_argument("--out", help="write report.md, report.csv and the plots here (default: the folder read)")
    parser.add_argument("--no-plots", action="store_true")
    args = parser.parse_args(argv)
    root = Path(args.path)
    if not root.exists():
        return _error(f"{root} does not exist (give a run or sweep directory, e.g. outputs/multirun/...)")
    runs = load_runs(root)
    if not runs:
        return _error(f"no results.json under {root}")
    unknown = [m for m in args.metric or [] if not known_metric(runs, m)]
    if unknown:
        return _error(f"--metric {', '.join(unknown)}: no run under {root} has it; metrics present: "
                      f"{', '.join(metric_names(runs)) or 'none'}")
    cfg = report_config(runs)
    tasks = by_task(runs)
    sections = []
    for task, task_runs in tasks.items():
        metrics = task_metrics(task_runs, args.metric, cfg, len(tasks) == 1)
        sections.append((task, metrics, summarize(task_runs, metrics)))
    try:
        claims = book_rows(runs, cfg)
        if not args.no_plots:
            for spec in cfg.get("plots") or []:
                resolve_plot(spec)
    except LeedlError as err:
        return _error(str(err))
    if args.out:
        out_dir = Path(args.out)
        problem = unwritable(out_dir)
        if problem:
            return _error(f"--out {out_dir}: {problem}")
    else:
        out_dir = root if root.is_dir() else root.parent
        problem = unwritable(out_dir)
    plots = [] if args.no_plots or problem else draw(tasks, sections, claims, cfg, args, out_dir / "report_plots")
    fails = failures(runs)
    print_table(out_dir, sections, claims, fails, plots)
    if problem:
        print(f"report files not written: {problem}; give --out DIR to write report.md, report.csv and the plots "
              f"elsewhere")
        return 0
    written = write_csv(sections, claims, out_dir) + [write_markdown(out_dir, markdown(out_dir, sections, claims,
                                                                                        fails, plots))]
    print("wrote " + ", ".join(str(p) for p in [written[-1], *written[:-1]]))
    return 0
