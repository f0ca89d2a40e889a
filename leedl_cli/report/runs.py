"""The runs `leedl report` reads: every results.json under a folder, checked to be a run record, with the status
it has now (a `running` record whose process is gone is `killed`), grouped by task and by job.

A run record is a JSON object with a string `status`; anything else (a list, an object without a status, a file
that does not parse) is listed as unreadable and belongs to no group. Imports nothing heavy.
"""
from __future__ import annotations

import math
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

from leedl_cli import jobs
from leedl_cli.jobs import split_override as override_key
from leedl_cli.results import RESULTS_FILE, find_results, read_results

UNREADABLE, RUNNING, KILLED = "unreadable", "running", "killed"
# a `running` record of another machine (or without a pid) whose run directory has not changed for this long
STALE_S = 600.0
# the statuses counted per group, in the order of the columns of report.csv
STATUSES = ("ok", "diverged", "failed", "interrupted", RUNNING, KILLED)


def group_label(run: dict) -> str:
    return jobs.group_label(run.get("overrides", []))


def grouping(key: str) -> bool:
    """An override key that can set runs apart into groups (part of the job, not the seed)."""
    return jobs.is_part_of_the_job(key) and key != jobs.SEED


def record_problem(run: Any) -> str | None:
    """Why `run` (a parsed results.json) is not a run record; None when it is one."""
    if not isinstance(run, dict):
        kind = {list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(type(run), "a number")
        return f"not a run record (the file holds {kind}, not an object)"
    if not isinstance(run.get("status"), str):
        return "not a run record (no status)"
    if not isinstance(run.get("overrides", []), list) or not all(isinstance(o, str) for o in run.get("overrides", [])):
        return "not a run record (overrides is not a list of strings)"
    if not isinstance(run.get("metrics", {}), dict):
        return "not a run record (metrics is not an object)"
    return None


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # alive, owned by someone else
        return True
    except OSError:
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    try:   # a pid reused by an unrelated program is not the run
        text = cmdline.read_bytes()
    except OSError:
        return True
    return b"python" in text or b"leedl" in text


def _newest_mtime(run_dir: Path) -> float:
    times = [p.stat().st_mtime for p in run_dir.iterdir() if p.is_file()] if run_dir.is_dir() else []
    return max(times, default=0.0)


def status_now(run: dict, run_dir: Path) -> tuple[str, str]:
    """(status, why) of a record as it stands now. A `running` record is `running` while its run holds the lock of
    its directory (.leedl.lock: an OS lock, gone with the process however it ended), else `killed`; without a lock
    file, while its process lives (pid and host recorded, this host); from another host or without a pid, while
    some file of its run directory changed in the last STALE_S seconds."""
    from leedl_cli.rundirs import LOCK_FILE, is_locked

    status = run["status"]
    if status != RUNNING:
        return status, ""
    if (run_dir / LOCK_FILE).is_file():
        if is_locked(run_dir):
            return RUNNING, ""
        return KILLED, "recorded as running, but no process holds its directory's lock: it ended without recording how"
    pid, host = run.get("pid"), run.get("host")
    if isinstance(pid, int) and host == platform.node():
        if _process_alive(pid):
            return RUNNING, ""
        return KILLED, f"recorded as running, but its process (pid {pid}) is gone: killed before it could record an end"
    idle = time.time() - _newest_mtime(run_dir)
    if idle < STALE_S:
        return RUNNING, ""
    return KILLED, f"recorded as running, and nothing in its directory changed for {idle / 60:.0f} min: presumed killed"


def read_record(path: Path) -> dict:
    """One results.json as a run: the record with `_dir`, `group` and its status now; unreadable if it is none."""
    try:
        run = read_results(path)
        problem = record_problem(run)
    except (OSError, ValueError) as err:
        problem = f"cannot be read ({err})"
    if problem:
        return {"status": UNREADABLE, "error": problem, "overrides": [], "_dir": path.parent, "group": None}
    run["_dir"] = path.parent
    run["group"] = group_label(run)
    status, why = status_now(run, path.parent)
    if status != run["status"]:
        run.update(status=status, error=why)
    return run


def load_runs(root: Path) -> list[dict]:
    runs = [read_record(path) for path in find_results(root)]
    # skip_done leaves a copy of the earlier run's results (skipped, done_in); count each run once
    loaded = {str(r["_dir"].resolve()) for r in runs}
    runs = [r for r in runs if not (r.get("skipped") and str(Path(r.get("done_in", "")).resolve()) in loaded)]
    for r in runs:
        if r.get("skipped") and r.get("done_in"):
            r["_dir"] = Path(r["done_in"])   # its metrics.csv and plots are there
    return runs


def records_since(root: Path, since: float) -> list[dict]:
    """The runs under `root` whose results.json was written at or after `since` (seconds since the epoch): the jobs
    of one `leedl run` command, even when `root` also holds older ones."""
    paths = [p for p in find_results(root) if p.stat().st_mtime >= since - 1.0] if root.exists() else []
    return [read_record(p) for p in paths]


def readable(runs: list[dict]) -> list[dict]:
    return [r for r in runs if r["status"] != UNREADABLE]


def by_task(runs: list[dict]) -> dict[str, list[dict]]:
    """The readable runs per task (the task recorded in results.json, else its `task=` override), in first-seen order."""
    out: dict[str, list[dict]] = {}
    for run in readable(runs):
        task = run.get("task") or run_value(run, "task") or "?"
        out.setdefault(str(task), []).append(run)
    return out


def run_value(run: dict, key: str) -> Any:
    """The value a run had for `key`: from its overrides, else its config-group choices, else results fields."""
    for item in run.get("overrides", []):
        k, v = override_key(item)
        if k == key:
            return v
    if key in (run.get("choices") or {}):
        return run["choices"][key]
    return run.get(key)


def same(a: Any, b: Any) -> bool:
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


def matches(run: dict, where: dict) -> bool:
    """The run has every value of `where` (as text, or as the same number: 1e-2 matches 0.01)."""
    return all(same(run_value(run, k), v) for k, v in (where or {}).items())


def raw_metric(run: dict, name: str) -> Any:
    value = (run.get("metrics") or {}).get(name, run.get(name))
    if value is None and "." in name:
        value = run
        for part in name.split("."):
            value = value.get(part) if isinstance(value, dict) else None
    return value


def metric(run: dict, name: str) -> float | None:
    """A metric (`test/acc`), a top-level results field (`minimum_ratio`) or a dotted path (`timings.per_update_s`)."""
    try:
        value = float(raw_metric(run, name))
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def metric_names(runs: list[dict]) -> list[str]:
    """The metrics some run recorded, sorted."""
    return sorted({m for r in readable(runs) for m in r.get("metrics") or {}})


def known_metric(runs: list[dict], name: str) -> bool:
    """Some run has a value for `name` (a metric, a results field or a dotted path), finished or not."""
    return any(raw_metric(r, name) is not None for r in readable(runs))


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def fmt(mean: float | None, std: float | None, n: int | None = None, with_n: bool = True) -> str:
    """`m ± s` (n=k); one run (n=1, or no std) is its value alone: a spread of one value says nothing."""
    if mean is None:
        return "—"
    small = 0 < abs(mean) < 1e-3   # small distances and tolerances: significant digits, not 0.0000
    digits = 4 if abs(mean) < 10 else 2
    text = f"{mean:.3g}" if small else f"{mean:.{digits}f}"
    if std is not None and n != 1:
        text += f" ± {std:.2g}" if small else f" ± {std:.{digits}f}"
    return text + (f" (n={n})" if n is not None and with_n else "")


def report_config(runs: list[dict]) -> dict:
    for run in readable(runs):
        if isinstance(run.get("report"), dict) and run["report"]:
            return run["report"]
    return {}


def choose_metrics(runs: list[dict], asked: list[str] | None, cfg: dict) -> list[str]:
    """The metric columns for `runs` (one task): the ones asked for, else the experiment's, else test/* (val/*)."""
    if asked:
        return list(asked)
    if cfg.get("metrics"):
        return list(cfg["metrics"])
    names = metric_names(runs)
    return [m for m in names if m.startswith("test/")] or [m for m in names if m.startswith("val/")][:4]


def summarize(runs: list[dict], metrics: list[str]) -> list[dict]:
    """One row per group: how many runs, how many ended each way, the mean ± std (n) of each metric over the ok ones."""
    groups: dict[str, list[dict]] = {}
    for run in readable(runs):
        groups.setdefault(run["group"], []).append(run)
    rows = []
    for label, members in groups.items():
        ok = [r for r in members if r.get("status") == "ok"]
        row = {"group": label, "runs": len(members), "seeds": ",".join(str(r.get("seed")) for r in members),
               "time_s": mean_std([r["timings"]["total_s"] for r in members
                                   if isinstance(r.get("timings"), dict) and r["timings"].get("total_s")])[0]}
        for status in STATUSES:
            row[status] = sum(r["status"] == status for r in members)
        row["failed"] += sum(r["status"] not in STATUSES for r in members)   # any other word: not an end we know
        row["other"] = ", ".join(f"{n} {s}" for s in STATUSES[3:] if (n := row[s]))
        for m in metrics:
            values = [v for v in (metric(r, m) for r in ok) if v is not None]
            row[m] = mean_std(values) + (len(values),)
        rows.append(row)
    return rows


def failures(runs: list[dict]) -> list[dict]:
    return [r for r in runs if r.get("status") != "ok"]


def results_path(run: dict) -> Path:
    return Path(run["_dir"]) / RESULTS_FILE
