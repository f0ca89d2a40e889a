"""`leedl report PATH`: aggregate results.json files into a table (mean ± std over seeds), report.md/.csv, plots.

Reads only results.json and metrics.csv, so any sweep, launcher or machine can be aggregated. Imports no torch.
Runs are grouped by their overrides other than the seed; failed and diverged runs are counted and listed.
What an experiment wants drawn and compared comes from its `report:` config (copied into results.json).

Book claims and their verdicts
------------------------------
An experiment's `report.book` lists the book's claims, one row each::

    book:
      - claim: "small batch generalises better"   # the book's statement, in words (printed)
        metric: test/acc                           # what is measured: a metric, a results field or a dotted path
        where: {task.data.batch_size: 256}         # which runs (their overrides / config choices); {} or absent = all
        by: task.data.batch_size                   # order and trend checks: the parameter whose values are the groups
                                                   #   (default: the report's x)
        book: "98.03 ± 0.07 %"                     # the book's own words or number (printed beside the measurement)
        check: "256 > 6000"                        # what the report verifies (absent: `book` itself, if it parses)

A `check` is one of (V, T, x are numbers, 1e-3 and 0.5 both fine; A, B are values of `by`):

    value      `V ± T` (or `V +- T`)   mean within T of V;  a bare `V` means V ± 1e-6·max(1, |V|)
    bound      `< x`, `<= x`, `> x`, `>= x`
    order      `A > B`, `A < B`         group A (runs with by=A) above / below group B
               `better than B`, `worse than B`   the group chosen by `where` above / below group B
               `best`, `worst` (= `highest`, `lowest`)   the `where` group above / below every other group of `by`
    trend      `falls`, `rises`         the means fall / rise as `by` grows (numeric order of its values)
    each       `each <value or bound>`  every run on its own (e.g. `each >= 0.995`: every seed converged)

Other groups in order/trend checks are the runs that match `where` except for `by` (so `where` can fix another
parameter, e.g. `{task: bert_squad}`). Higher is better: for a loss write `lowest` or `A < B`.

Verdicts use the mean m and the std s over seeds of each group (the band m ± s):

    holds          value/bound: the whole band satisfies the check; order: the bands do not overlap and the order is
                   the claimed one; trend: the means move monotonically the claimed way and the first and last
                   bands do not overlap; each: every run satisfies it
    does not hold  value/bound: no point of the band satisfies it; order: the bands do not overlap and the order is
                   reversed (best/worst: another group is clearly above/below); trend: two neighbouring groups clearly
                   (bands apart) move the other way; each: no run satisfies it
    inconclusive   anything between: the bands overlap (within their std), or some runs satisfy `each` and some not
    not measured   no finished run with a finite value of the metric for a group the check needs

The verdict is a column of the printed table, report.md and report_claims.csv, and the report ends with the summary
line "N of M claims hold" (M counts every row with a check, also those not measured).
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
from leedl_cli.errors import LeedlError
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
    """The run has every value of `where` (as text, or as the same number: 1e-2 matches 0.01)."""
    return all(_same(run_value(run, k), v) for k, v in (where or {}).items())


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
    if 0 < abs(mean) < 1e-3:   # small distances and tolerances: significant digits, not 0.0000
        text = f"{mean:.3g} ± {std:.2g}"
    else:
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


# ---- book claims and their verdicts (grammar: the module docstring) ---------------------------------
HOLDS, FAILS, INCONCLUSIVE, NOT_MEASURED = "holds", "does not hold", "inconclusive", "not measured"
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
CHECK_FORMS = ("`V ± T`, `V`, `< x`, `<= x`, `> x`, `>= x`, `A > B`, `A < B`, `better than B`, `worse than B`, "
               "`best`, `worst`, `highest`, `lowest`, `falls`, `rises`, `each <value or bound>`")


def parse_check(text: Any) -> dict | None:
    """A check string -> {"kind": value|bound|order|extreme|trend, ...}; None if it is none of the forms."""
    import re

    if text is None:
        return None
    t = " ".join(str(text).strip().split())
    each = False
    if t.lower().startswith("each "):
        each, t = True, t[5:].strip()
    low = t.lower()
    m = re.fullmatch(rf"({_NUM})\s*(?:±|\+-|\+/-)\s*({_NUM})", t)
    if m:
        return {"kind": "value", "value": float(m[1]), "tol": abs(float(m[2])), "each": each}
    if re.fullmatch(_NUM, t):
        v = float(t)
        return {"kind": "value", "value": v, "tol": 1e-6 * max(1.0, abs(v)), "each": each}
    m = re.fullmatch(rf"(<=|>=|<|>|≤|≥)\s*({_NUM})", t)
    if m:
        op = {"≤": "<=", "≥": ">="}.get(m[1], m[1])
        return {"kind": "bound", "op": op, "x": float(m[2]), "each": each}
    if each:
        return None    # `each` applies to a value or a bound only
    if low in ("best", "highest", "worst", "lowest"):
        return {"kind": "extreme", "high": low in ("best", "highest")}
    if low in ("falls", "rises"):
        return {"kind": "trend", "up": low == "rises"}
    m = re.fullmatch(r"(better|worse) than (\S+)", t, flags=re.IGNORECASE)
    if m:
        return {"kind": "order", "a": None, "op": ">" if m[1].lower() == "better" else "<", "b": m[2]}
    m = re.fullmatch(r"(\S+)\s*(>|<)\s*(\S+)", t)
    if m:
        return {"kind": "order", "a": m[1], "op": m[2], "b": m[3]}
    return None


def claim_check(claim: dict) -> dict | None:
    """The parsed check of a book row: its `check`, else its `book` text if that is a check. A `check` that does
    not parse is an error (naming the claim, the text and the accepted forms)."""
    if claim.get("check") is not None:
        parsed = parse_check(claim["check"])
        if parsed is None:
            raise LeedlError(f"report.book: check={claim['check']!r} of claim {claim.get('claim', '')!r} is not a "
                             f"check; accepted: {CHECK_FORMS}")
        return parsed
    return parse_check(claim.get("book"))


def _same(a: Any, b: Any) -> bool:
    """Two values of a parameter are the same: as strings, as booleans (a sweep records `true` as True), or as
    numbers (1e-2 == 0.01)."""
    if str(a) == str(b):
        return True
    if str(a).lower() in ("true", "false") and str(a).lower() == str(b).lower():
        return True
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return False


def _values(runs: list[dict], metric_name: str) -> list[float]:
    return [v for v in (metric(r, metric_name) for r in runs if r.get("status") == "ok") if v is not None]


def _band(values: list[float]) -> tuple[float, float, float] | None:
    mean, std = mean_std(values)
    return None if mean is None else (mean, mean - std, mean + std)


def _band_verdict(band: tuple[float, float, float], ok_low: float, ok_high: float) -> str:
    """The band [lo, hi] against the interval [ok_low, ok_high] that satisfies the check."""
    _, lo, hi = band
    if ok_low <= lo and hi <= ok_high:
        return HOLDS
    if hi < ok_low or lo > ok_high:
        return FAILS
    return INCONCLUSIVE


def _satisfies(value: float, check: dict) -> bool:
    if check["kind"] == "value":
        return abs(value - check["value"]) <= check["tol"]
    x = check["x"]
    return {"<": value < x, "<=": value <= x, ">": value > x, ">=": value >= x}[check["op"]]


def _single_verdict(values: list[float], check: dict) -> str:
    if not values:
        return NOT_MEASURED
    if check["each"]:
        hits = sum(_satisfies(v, check) for v in values)
        return HOLDS if hits == len(values) else FAILS if hits == 0 else INCONCLUSIVE
    band = _band(values)
    if check["kind"] == "value":
        return _band_verdict(band, check["value"] - check["tol"], check["value"] + check["tol"])
    _, lo, hi = band
    if _satisfies(lo, check) and _satisfies(hi, check):
        return HOLDS
    if not _satisfies(lo, check) and not _satisfies(hi, check):
        return FAILS
    return INCONCLUSIVE


def _above(a: tuple, b: tuple) -> bool:
    """Band a lies wholly above band b."""
    return a[1] > b[2]


def _groups_by(runs: list[dict], by: str, where: dict, metric_name: str) -> dict[str, list[float]]:
    """Runs that match `where` (except for `by`), grouped by their value of `by` -> metric values."""
    rest = {k: v for k, v in (where or {}).items() if k != by}
    groups: dict[str, list[float]] = {}
    for r in runs:
        if r.get("status") != "ok" or not matches(r, rest) or run_value(r, by) is None:
            continue
        value = metric(r, metric_name)
        label = str(run_value(r, by))
        groups.setdefault(label, [])
        if value is not None:
            groups[label].append(value)
    return groups


def _pick(groups: dict[str, list[float]], label: Any) -> tuple[str | None, list[float]]:
    for key, values in groups.items():
        if _same(key, label):
            return key, values
    return None, []


def _show(label: str, values: list[float]) -> str:
    mean, std = mean_std(values)
    return f"{label}: {fmt(mean, std, len(values))}"


def verdict(runs: list[dict], claim: dict, default_by: str | None = None) -> tuple[str, str]:
    """(verdict, what was compared) for one book row; ("", "") when the row has no check."""
    check = claim_check(claim)
    if check is None:
        return "", ""
    name, where = claim["metric"], claim.get("where") or {}
    if check["kind"] in ("value", "bound"):
        chosen = [r for r in runs if matches(r, where)]
        return _single_verdict(_values(chosen, name), check), ""
    by = claim.get("by") or default_by
    if not by:
        raise LeedlError(f"report.book: claim {claim.get('claim', '')!r} checks {claim.get('check', claim.get('book'))!r}"
                         " between groups but names no `by` parameter (and the report has no `x`)")
    groups = _groups_by(runs, by, where, name)
    bands = {k: _band(v) for k, v in groups.items()}
    if check["kind"] == "trend":
        def order(k):
            try:
                return (0, float(k), "")
            except ValueError:
                return (1, 0.0, k)
        keys = sorted((k for k in bands if bands[k] is not None), key=order)
        if len(keys) < 2 or len(keys) < len(groups):
            return NOT_MEASURED, ""
        seq = [bands[k] if check["up"] else (-bands[k][0], -bands[k][2], -bands[k][1]) for k in keys]
        shown = " → ".join(_show(k, groups[k]) for k in keys)
        if any(_above(seq[i], seq[i + 1]) for i in range(len(seq) - 1)):
            return FAILS, shown
        monotone = all(seq[i][0] < seq[i + 1][0] for i in range(len(seq) - 1))
        return (HOLDS if monotone and _above(seq[-1], seq[0]) else INCONCLUSIVE), shown
    if check["kind"] == "order":
        a_label = check["a"]
        if a_label is None:
            if by not in where:
                raise LeedlError(f"report.book: claim {claim.get('claim', '')!r}: {claim.get('check', claim.get('book'))!r}"
                                 f" needs `where` to name the group ({by}: ...)")
            a_label = where[by]
        (ka, va), (kb, vb) = _pick(groups, a_label), _pick(groups, check["b"])
        if not va or not vb:
            return NOT_MEASURED, ""
        a, b = _band(va), _band(vb)
        if check["op"] == "<":
            a, b = b, a
        shown = f"{_show(ka, va)} vs {_show(kb, vb)}"
        return (HOLDS if _above(a, b) else FAILS if _above(b, a) else INCONCLUSIVE), shown
    # extreme: best / worst
    if by not in where:
        raise LeedlError(f"report.book: claim {claim.get('claim', '')!r}: "
                         f"{claim.get('check', claim.get('book'))!r} needs `where` to name the group ({by}: ...)")
    key, values = _pick(groups, where[by])
    others = {k: bands[k] for k in groups if k != key}
    if not values or not others or any(b is None for b in others.values()):
        return NOT_MEASURED, ""
    sign = 1 if check["high"] else -1
    me = tuple(sign * x for x in _band(values))
    me = (me[0], min(me[1:]), max(me[1:]))
    flipped = {k: (sign * b[0], min(sign * b[1], sign * b[2]), max(sign * b[1], sign * b[2])) for k, b in others.items()}
    runner_up = max(flipped, key=lambda k: flipped[k][0])
    shown = f"{_show(key, values)}; next: {_show(runner_up, groups[runner_up])}"
    if all(_above(me, b) for b in flipped.values()):
        return HOLDS, shown
    if any(_above(b, me) for b in flipped.values()):
        return FAILS, shown
    return INCONCLUSIVE, shown


def book_rows(runs: list[dict], cfg: dict) -> list[dict]:
    """One row per book claim: the claim, the book's words, the check, what was measured and the verdict."""
    rows = []
    for claim in cfg.get("book") or []:
        check = claim_check(claim)
        result, compared = verdict(runs, claim, cfg.get("x"))
        if compared:    # order / extreme / trend: the groups compared
            measured = compared
        else:
            chosen = [r for r in runs if r.get("status") == "ok" and matches(r, claim.get("where"))]
            values = _values(chosen, claim["metric"])
            measured = fmt(*mean_std(values), len(values))
            if check and check.get("each") and values:
                hits = sum(_satisfies(v, check) for v in values)
                measured += f"; {hits} of {len(values)} runs satisfy it"
        rows.append({"claim": claim.get("claim", ""), "metric": claim["metric"], "where": claim.get("where") or {},
                     "book": claim.get("book", ""),
                     "check": "" if check is None else str(claim.get("check", claim.get("book"))),
                     "measured": measured, "verdict": result})
    return rows


def summary_line(claims: list[dict]) -> str:
    checked = [c for c in claims if c["verdict"]]
    counts = {v: sum(c["verdict"] == v for c in checked) for v in (FAILS, INCONCLUSIVE, NOT_MEASURED)}
    rest = ", ".join(f"{n} {'do not hold' if v == FAILS and n > 1 else v}" for v, n in counts.items() if n)
    return f"{sum(c['verdict'] == HOLDS for c in checked)} of {len(checked)} claims hold" + (f" ({rest})" if rest else "")


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
def where_text(where: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in where.items()) or "all"


def write_csv(rows: list[dict], metrics: list[str], path: Path, claims: list[dict] | None = None) -> None:
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["group", "runs", "ok", "diverged", "failed", "seeds", "time_s"]
                   + [c for m in metrics for c in (f"{m} mean", f"{m} std", f"{m} n")])
        for row in rows:
            w.writerow([row["group"], row["runs"], row["ok"], row["diverged"], row["failed"], row["seeds"],
                        f"{row['time_s']:.2f}" if row["time_s"] else ""]
                       + [v if v is not None else "" for m in metrics for v in row[m]])
        if claims:   # a second table below a blank line: the book's claims and their verdicts
            w.writerow([])
            w.writerow(["claim", "where", "metric", "book", "check", "measured", "verdict"])
            for c in claims:
                w.writerow([c["claim"], where_text(c["where"]), c["metric"], c["book"], c["check"], c["measured"],
                            c["verdict"]])
            w.writerow(["summary", summary_line(claims)])
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
        lines += ["", "## The book vs this run", "", "| claim | where | metric | book | check | measured | verdict |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for c in claims:
            cells = [c["claim"], where_text(c["where"]), c["metric"], c["book"], c["check"], c["measured"],
                     f"**{c['verdict']}**" if c["verdict"] else "—"]
            lines.append("| " + " | ".join(str(x).replace("|", "\\|") for x in cells) + " |")
        lines += ["", f"**{summary_line(claims)}**"]
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
        for col in ["claim", "where", "metric", "book", "check", "measured", "verdict"]:
            book.add_column(col, overflow="fold")
        colour = {HOLDS: "green", FAILS: "red", INCONCLUSIVE: "yellow", NOT_MEASURED: "dim"}
        for c in claims:
            v = c["verdict"]
            book.add_row(c["claim"], where_text(c["where"]), c["metric"], str(c["book"]), c["check"], c["measured"],
                         f"[{colour[v]}]{v}[/{colour[v]}]" if v else "—")
        console.print(book)
        console.print(summary_line(claims), markup=False)
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
    try:
        claims = book_rows(runs, cfg)
    except LeedlError as err:
        print(f"leedl report: error: {err}", file=sys.stderr)
        return 2
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
    write_csv(rows, metrics, out_dir / "report.csv", claims)
    (out_dir / "report.md").write_text(markdown(out_dir, rows, metrics, claims, fails, plots))
    print_table(out_dir, rows, metrics, claims, fails, plots)
    print(f"wrote {out_dir / 'report.md'} and {out_dir / 'report.csv'}")
    return 0
