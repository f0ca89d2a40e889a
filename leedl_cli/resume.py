"""Resume an interrupted run, skip the finished jobs of a re-run sweep. Imports nothing heavy (the CLI uses it).

A run is *the same job* as an earlier one by the one rule of `leedl_cli.jobs` (the same overrides, apart
from the options that only say how or where to run: `resume`, `skip_done`, `threads`, `logger`, `hydra.*`, ...). `results.json`
says how a run ended: `ok` and `diverged` are finished; `running` (killed) and `failed` are not.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

from leedl_cli.atomic import write_csv_atomic
from leedl_cli.errors import LeedlError
from leedl_cli.jobs import is_part_of_the_job, job_key, split_override
from leedl_cli.results import RESULTS_FILE, read_results

FINISHED = {"ok", "diverged"}
# the overrides a resumed run may change: they only lengthen or shorten it (recorded as `resumed_with`)
LENGTH_KEYS = ("trainer.max_epochs", "trainer.max_steps", "trainer.max_time")


def override_key(item: str) -> str:
    return split_override(item)[0]


def iter_runs(output_root: str | os.PathLike, also: str | os.PathLike | None = None):
    """(run_dir, results) for every readable results.json under output_root (and `also`), newest first."""
    found = set()
    for base in [Path(output_root) / "runs", Path(output_root) / "multirun", *([Path(also)] if also else [])]:
        if base.is_dir():
            found |= set(base.rglob(RESULTS_FILE))
    found = list(found)
    found.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    for path in found:
        try:
            yield path.parent, read_results(path)
        except (OSError, ValueError):
            continue


def find_done(output_root: str | os.PathLike, overrides: list[str], exclude: Path | None = None,
              sweep_dir: str | os.PathLike | None = None) -> Path | None:
    """The newest run of this job that finished with status ok (for skip_done), under output_root or in the
    sweep directory being continued."""
    key = job_key(overrides)
    for run_dir, res in iter_runs(output_root, sweep_dir):
        if res.get("status") == "ok" and not res.get("skipped") and job_key(res.get("overrides", [])) == key:
            if exclude is None or run_dir.resolve() != exclude.resolve():
                return run_dir
    return None


def find_unfinished(output_root: str | os.PathLike, overrides: list[str]) -> Path | None:
    """The newest run of this job that did not finish (killed: `running`; crashed: `failed`), for resume=auto."""
    key = job_key(overrides)
    for run_dir, res in iter_runs(output_root):
        if res.get("status") not in FINISHED | {"skipped"} and job_key(res.get("overrides", [])) == key:
            return run_dir
    return None


def resume_overrides(run_dir: Path, extra: list[str]) -> list[str]:
    """The overrides that continue `run_dir`: its own, then the user's extra ones (which win), then where to write."""
    results_path = run_dir / RESULTS_FILE
    if not results_path.is_file():
        raise LeedlError(f"resume={run_dir}: not a leedl run directory (no {RESULTS_FILE} there). "
                         f"Give a directory under outputs/runs/, or resume=auto.")
    old = read_results(results_path)
    if old.get("status") in FINISHED:
        raise LeedlError(f"resume={run_dir}: that run already finished (status {old['status']}); nothing to resume. "
                         f"Start a new run without resume=.")
    if old.get("skipped"):
        raise LeedlError(f"resume={run_dir}: that job was skipped (done in {old.get('done_in')}); nothing to resume.")
    before = {override_key(o): split_override(o)[1] for o in old.get("overrides", [])}
    changed = sorted({override_key(o) for o in extra if is_part_of_the_job(override_key(o))
                      and override_key(o) not in (*LENGTH_KEYS, "resume")
                      and before.get(override_key(o)) != split_override(o)[1]})
    if changed:
        raise LeedlError(f"resume={run_dir}: {', '.join(changed)} would change what the run computes; a resumed run "
                         f"takes only {', '.join(LENGTH_KEYS)}. Start a new run for other values.")
    extra_keys = {override_key(o) for o in extra}
    kept = [o for o in old.get("overrides", []) if override_key(o) not in extra_keys | {"resume"}]
    quoted = "'" + str(run_dir).replace("'", "\\'") + "'"
    return kept + list(extra) + [f"resume={quoted}", f"hydra.run.dir={quoted}", "hydra.output_subdir=null"]


def keep_completed_rows(metrics_csv: Path, last_epoch: int, global_step: int) -> int:
    """Drop the rows logged after the checkpoint a run resumes from (the epoch that was cut short), atomically.

    Rows with an epoch keep epochs <= last_epoch; rows without one (learning-rate monitor) keep steps before
    global_step. A half-written last line (killed while writing) is dropped. Returns the rows dropped.
    """
    if not metrics_csv.is_file():
        return 0
    with open(metrics_csv, newline="") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames or []
        rows = list(reader)
    kept = []
    for row in rows:
        if None in row or any(v is None for v in row.values()):   # truncated line
            continue
        try:
            epoch = row.get("epoch", "")
            if epoch not in ("", None):
                ok = int(float(epoch)) <= last_epoch
            else:
                ok = int(float(row.get("step") or 0)) < global_step
        except ValueError:
            continue
        if ok:
            kept.append(row)
    write_csv_atomic(metrics_csv, fields, kept)
    return len(rows) - len(kept)
