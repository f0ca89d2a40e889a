"""`leedl report PATH`: aggregate results.json files into a table (mean ± std over seeds), report.md/.csv, plots.

Reads only results.json and metrics.csv, so any sweep, launcher or machine can be aggregated. Imports no torch.
Runs are grouped by their overrides other than the seed; failed and diverged runs are counted and listed.
What an experiment wants drawn and compared comes from its `report:` config (copied into results.json).
"""
from __future__ import annotations

import argparse
import csv
import importlib
import math
import statistics
import sys
from pathlib import Path
from typing import Any

from leedl_cli import jobs
from leedl_cli.jobs import split_override as override_key
from leedl_cli.results import find_results, read_results


def group_label(run: dict) -> str:
    return jobs.group_label(run.get("overrides", []))


def _grouping(key: str) -> bool:
    """An override key that can set runs apart into groups (part of the job, not the seed)."""
    return jobs.is_part_of_the_job(key) and key != jobs.SEED


def load_runs(root: Path) -> list[dict]:
    runs = []
    for path in find_results(root):
        try:
            run = read_results(path)
        except (OSError, ValueError) as err:
            run = {"status": "unreadable", "error": str(err), "overrides": []}
        run["_dir"] = path.parent
        run["group"] = group_label(run)
        runs.append(run)
    # skip_done leaves a copy of the earlier run's results (skipped, done_in); count each run once
    loaded = {str(r["_dir"].resolve()) for r in runs}
    runs = [r for r in runs if not (r.get("skipped") and str(Path(r.get("done_in", "")).resolve()) in loaded)]
    for r in runs:
        if r.get("skipped") and r.get("done_in"):
            r["_dir"] = Path(r["done_in"])   # its metrics.csv and plots are there
    return runs


def run_value(run: dict, key: str) -> Any:
    """The value a run had for `key`: from its overrides, else its config-group choices, else results fields."""
    for item in run.get("overrides", []):
        k, v = override_key(item)
        if k == key:
            return v
    if key in run.get("choices", {}):
        return run["choices"][key]
    return run.get(key)


def matches(run: dict, where: dict) -> bool:
    return all(str(run_value(run, k)) == str(v) for k, v in (where or {}).items())


def metric(run: dict, name: str) -> float | None:
    """A metric (`test/acc`), a top-level results field (`minimum_ratio`) or a dotted path (`timings.per_update_s`)."""
    value = run.get("metrics", {}).get(name, run.get(name))
    if value is None and "." in name:
        value = run
        for part in name.split("."):
            value = value.get(part) if isinstance(value, dict) else None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def fmt(mean: float | None, std: float | None, n: int | None = None) -> str:
    if mean is None:
        return "—"
    digits = 4 if abs(mean) < 10 else 2
    text = f"{mean:.{digits}f} ± {std:.{digits}f}"
    return text + (f" (n={n})" if n is not None else "")


def report_config(runs: list[dict]) -> dict:
    for run in runs:
        if run.get("report"):
            return run["report"]
    return {}


def choose_metrics(runs: list[dict], asked: list[str] | None, cfg: dict) -> list[str]:
    if asked:
        return asked
    if cfg.get("metrics"):
        return list(cfg["metrics"])
    names = sorted({m for r in runs for m in r.get("metrics", {}) if m.startswith("test/")})
    return names or sorted({m for r in runs for m in r.get("metrics", {}) if m.startswith("val/")})[:4]


def summarize(runs: list[dict], metrics: list[str]) -> list[dict]:
    groups: dict[str, list[dict]] = {}
    for run in runs:
        groups.setdefault(run["group"], []).append(run)
    rows = []
    for label, members in groups.items():
        ok = [r for r in members if r.get("status") == "ok"]
        row = {"group": label, "runs": len(members),
               "ok": len(ok),
               "diverged": sum(r.get("status") == "diverged" for r in members),
               "failed": sum(r.get("status") not in ("ok", "diverged") for r in members),
               "seeds": ",".join(str(r.get("seed")) for r in members),
               "time_s": mean_std([r["timings"]["total_s"] for r in members if r.get("timings", {}).get("total_s")])[0]}
        for m in metrics:
            values = [v for v in (metric(r, m) for r in ok) if v is not None]
            row[m] = mean_std(values) + (len(values),)
        rows.append(row)
    return rows


def book_rows(runs: list[dict], cfg: dict) -> list[dict]:
    rows = []
    for claim in cfg.get("book") or []:
        chosen = [r for r in runs if r.get("status") == "ok" and matches(r, claim.get("where"))]
        values = [v for v in (metric(r, claim["metric"]) for r in chosen) if v is not None]
        mean, std = mean_std(values)
        rows.append({"claim": claim.get("claim", ""), "metric": claim["metric"], "where": claim.get("where") or {},
                     "book": claim.get("book", ""), "measured": fmt(mean, std, len(values))})
    return rows


def failures(runs: list[dict]) -> list[dict]:
    return [r for r in runs if r.get("status") != "ok"]


# ---- plots -----------------------------------------------------------------------------------------
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


def plot_metric_vs_param(runs: list[dict], out_dir: Path, x: str, metrics: list[str]) -> list[Path]:
    """Each metric (mean ± std over seeds) against the swept parameter `x`; other overrides make separate lines."""
    plt = _plt()
    paths = []
    ok = [r for r in runs if r.get("status") == "ok"]
    for m in metrics:
        series: dict[str, dict[Any, list[float]]] = {}
        for r in ok:
            value = metric(r, m)
            if value is None or run_value(r, x) is None:
                continue
            rest = " ".join(o for o in r.get("overrides", []) if _grouping(override_key(o)[0]) and override_key(o)[0] != x) or m
            series.setdefault(rest, {}).setdefault(_as_number(run_value(r, x)), []).append(value)
        if not series:
            continue
        fig, ax = plt.subplots(figsize=(6, 4))
        for label, points in series.items():
            keys = sorted(points, key=lambda k: (isinstance(k, str), k))
            means = [statistics.fmean(points[k]) for k in keys]
            stds = [statistics.stdev(points[k]) if len(points[k]) > 1 else 0.0 for k in keys]
            xs = keys if all(isinstance(k, float) for k in keys) else [str(k) for k in keys]
            ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, label=label)
        if all(isinstance(k, float) and k > 0 for pts in series.values() for k in pts) and \
                max(k for pts in series.values() for k in pts) / min(k for pts in series.values() for k in pts) > 50:
            ax.set_xscale("log")
        ax.set_xlabel(x)
        ax.set_ylabel(m)
        ax.grid(alpha=0.3)
        if len(series) > 1:
            ax.legend(fontsize=7)
        fig.tight_layout()
        path = out_dir / f"{m.replace('/', '_')}_vs_{x.replace('/', '_')}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths


def read_curve(run_dir: Path, name: str, x: str = "step") -> tuple[list[float], list[float]]:
    path = run_dir / "metrics.csv"
    xs, ys = [], []
    if not path.is_file():
        return xs, ys
    with open(path) as f:
        for row in csv.DictReader(f):
            if row.get(name) not in (None, "") and row.get(x) not in (None, ""):
                xs.append(float(row[x]))
                ys.append(float(row[name]))
    return xs, ys


def plot_curves(runs: list[dict], out_dir: Path, metrics: list[str], x: str = "step") -> list[Path]:
    """Training curves from metrics.csv: the mean over a group's seeds per metric (one figure per metric)."""
    plt = _plt()
    paths = []
    for m in metrics:
        fig, ax = plt.subplots(figsize=(6, 4))
        drawn = False
        groups: dict[str, list[dict]] = {}
        for r in runs:
            groups.setdefault(r["group"], []).append(r)
        for label, members in groups.items():
            curves = [read_curve(r["_dir"], m, x) for r in members]
            curves = [c for c in curves if c[0]]
            if not curves:
                continue
            length = min(len(c[0]) for c in curves)
            xs = curves[0][0][:length]
            ys = [statistics.fmean(c[1][i] for c in curves) for i in range(length)]
            ax.plot(xs, ys, label=f"{label} (n={len(curves)})")
            drawn = True
        if not drawn:
            plt.close(fig)
            continue
        ax.set_xlabel(x)
        ax.set_ylabel(m)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = out_dir / f"curve_{m.replace('/', '_')}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths


def extra_plots(runs: list[dict], out_dir: Path, cfg: dict) -> list[Path]:
    """Plot functions an experiment names as `module:function` in report.plots."""
    paths = []
    for spec in cfg.get("plots") or []:
        spec = dict(spec)
        target = spec.pop("fn")
        module_name, _, fn_name = target.partition(":")
        fn = getattr(importlib.import_module(module_name), fn_name)
        paths += list(fn(runs, out_dir, **spec) or [])
    return paths


# ---- output ----------------------------------------------------------------------------------------
def write_csv(rows: list[dict], metrics: list[str], path: Path) -> None:
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["group", "runs", "ok", "diverged", "failed", "seeds", "time_s"]
                   + [c for m in metrics for c in (f"{m} mean", f"{m} std", f"{m} n")])
        for row in rows:
            w.writerow([row["group"], row["runs"], row["ok"], row["diverged"], row["failed"], row["seeds"],
                        f"{row['time_s']:.2f}" if row["time_s"] else ""]
                       + [v if v is not None else "" for m in metrics for v in row[m]])
    tmp.replace(path)


def markdown(root: Path, rows, metrics, claims, failed, plots) -> str:
    lines = [f"# leedl report: {root}", "", f"{sum(r['runs'] for r in rows)} runs in {len(rows)} groups.", ""]
    lines.append("| group | runs | ok | diverged | failed | " + " | ".join(metrics) + " | time/run (s) |")
    lines.append("|" + " --- |" * (6 + len(metrics)))
    for row in rows:
        cells = [fmt(*row[m][:2]) for m in metrics]
        t = f"{row['time_s']:.1f}" if row["time_s"] else "—"
        lines.append(f"| {row['group']} | {row['runs']} | {row['ok']} | {row['diverged']} | {row['failed']} | "
                     + " | ".join(cells) + f" | {t} |")
    if claims:
        lines += ["", "## The book vs this run", "", "| claim | where | metric | book | measured |",
                  "| --- | --- | --- | --- | --- |"]
        for c in claims:
            where = ", ".join(f"{k}={v}" for k, v in c["where"].items()) or "all"
            lines.append(f"| {c['claim']} | {where} | {c['metric']} | {c['book']} | {c['measured']} |")
    if failed:
        lines += ["", "## Runs that did not finish ok", ""]
        for r in failed:
            lines.append(f"- `{r['_dir']}`: **{r.get('status')}** — {str(r.get('error', '')).splitlines()[0] if r.get('error') else 'loss became NaN/inf' if r.get('status') == 'diverged' else ''}")
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p.stem}]({p.relative_to(root) if p.is_relative_to(root) else p})"
                                          for p in plots]
    return "\n".join(lines) + "\n"


def print_table(root: Path, rows, metrics, claims, failed, plots) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:   # piped or captured: do not fold the table into 80 columns
        console = Console(width=200)
    table = Table(title=f"leedl report: {root}")
    for col in ["group", "runs", "ok", "div", "fail", *metrics, "s/run"]:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(row["group"], str(row["runs"]), str(row["ok"]), str(row["diverged"]), str(row["failed"]),
                      *[fmt(*row[m][:2]) for m in metrics], f"{row['time_s']:.1f}" if row["time_s"] else "—")
    console.print(table)
    if claims:
        book = Table(title="the book vs this run")
        for col in ["claim", "where", "metric", "book", "measured"]:
            book.add_column(col, overflow="fold")
        for c in claims:
            book.add_row(c["claim"], ", ".join(f"{k}={v}" for k, v in c["where"].items()) or "all", c["metric"],
                         str(c["book"]), c["measured"])
        console.print(book)
    for r in failed:
        console.print(f"[red]{r.get('status')}[/red] {r['_dir']}: {str(r.get('error', '')).splitlines()[0] if r.get('error') else ''}")
    for p in plots:
        console.print(f"plot: {p}")


def report_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="leedl report", description=__doc__.splitlines()[0])
    parser.add_argument("path", help="a run directory, a sweep directory, or a folder of them")
    parser.add_argument("--metric", action="append", help="metric column(s) (default: from the experiment, else test/*)")
    parser.add_argument("--x", help="swept parameter to plot metrics against (default: from the experiment)")
    parser.add_argument("--curves", nargs="*", help="also draw training curves of these metrics from metrics.csv")
    parser.add_argument("--no-plots", action="store_true")
    args = parser.parse_args(argv)
    root = Path(args.path)
    if not root.exists():
        print(f"leedl report: error: {root} does not exist (give a run or sweep directory, e.g. outputs/multirun/...)",
              file=sys.stderr)
        return 2
    runs = load_runs(root)
    if not runs:
        print(f"leedl report: error: no results.json under {root}", file=sys.stderr)
        return 2
    cfg = report_config(runs)
    metrics = choose_metrics(runs, args.metric, cfg)
    rows = summarize(runs, metrics)
    claims = book_rows(runs, cfg)
    out_dir = root if root.is_dir() else root.parent
    plots: list[Path] = []
    if not args.no_plots:
        x = args.x or cfg.get("x")
        if x is None and len(rows) > 1:   # the first override key that differs between groups
            keys = [override_key(o)[0] for r in runs for o in r.get("overrides", [])
                    if _grouping(override_key(o)[0])]
            varying = [k for k in dict.fromkeys(keys) if len({str(run_value(r, k)) for r in runs}) > 1]
            x = varying[0] if varying else None
        plot_dir = out_dir / "report_plots"
        plot_dir.mkdir(exist_ok=True)
        if x:
            plots += plot_metric_vs_param(runs, plot_dir, x, metrics)
        curves = args.curves if args.curves else cfg.get("curves")
        if curves:
            plots += plot_curves(runs, plot_dir, curves)
        plots += extra_plots(runs, plot_dir, cfg)
    fails = failures(runs)
    write_csv(rows, metrics, out_dir / "report.csv")
    (out_dir / "report.md").write_text(markdown(out_dir, rows, metrics, claims, fails, plots))
    print_table(out_dir, rows, metrics, claims, fails, plots)
    print(f"wrote {out_dir / 'report.md'} and {out_dir / 'report.csv'}")
    return 0
