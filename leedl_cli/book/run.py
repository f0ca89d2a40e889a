"""`leedl book run`: run the presets not yet measured, one `leedl run experiment=NAME` each, in the book's order.

Resumable and failure-tolerant: a preset whose runs all ended ok (at this budget) is skipped; a sweep stopped
half-way is continued in its own sweep directory with `skip_done=true`; a preset that fails is recorded in
DIR/book.json (its exit status and log) and the others go on. Presets whose data sets are absent, or that need a
value only the user can give (`???`, e.g. decoding_strategies' trained model), are skipped with the reason.

Every preset goes to its own directory DIR/<preset> (DIR/<preset>.2, ... for a fresh measurement with --all); the
runs record the preset (`choices.experiment`), which is how `leedl book report` finds them. K jobs of a sweep run
at a time through Hydra's joblib launcher. A preset that reads what another preset wrote under
`${output_root}` (own_pretraining reads own_pretraining_mlm's model) runs after it and is pointed at its run.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from leedl_cli.atomic import write_json_atomic
from leedl_cli.book.plan import Row, duration, row
from leedl_cli.book.presets import Preset, order_by_needs
from leedl_cli.book.records import FULL, SMOKE, by_preset, load

STATE_FILE = "book.json"


def missing_data(tasks: list[str], root: Path) -> list[str]:
    """The data sets (folder names) the tasks need that are not under `root`, as `leedl data check --task` tells."""
    from leedl_cli.data.registry import DATASETS

    absent = []
    for ds in DATASETS:
        if ds.bundled or not any(t in ds.tasks for t in tasks):
            continue
        if not all(any((root / ds.name).glob(pattern)) for pattern in ds.files):
            absent.append(ds.name)
    return absent


@dataclass
class Options:
    out: Path
    budget: str = FULL
    jobs: int = 1
    threads: int | None = None
    again: bool = False                           # --all: measure again what is measured
    extra: list[str] = field(default_factory=list)  # overrides given to every run (key=value)
    data_dir: Path | None = None


def slots(out: Path, name: str) -> list[Path]:
    """The directories a preset has used under `out`: <name>, <name>.2, <name>.3, ..."""
    found = [out / name] if (out / name).exists() else []
    n = 2
    while (out / f"{name}.{n}").exists():
        found.append(out / f"{name}.{n}")
        n += 1
    return found


def command(preset: Preset, where: Path, continuing: bool, opts: Options, reads: dict[str, str]) -> list[str]:
    """The `leedl run` command line of one preset."""
    args = [sys.executable, "-m", "leedl_cli.cli", "run", f"experiment={preset.name}", f"output_root={opts.out}"]
    if opts.threads:
        args.append(f"threads={opts.threads}")
    if preset.multirun:   # -m: some presets (hpo_digits) leave hydra.mode to the command line
        args[4:4] = ["-m"]
        args.append(f"hydra.sweep.dir={where}")
        if continuing:
            args.append("skip_done=true")
        if opts.jobs > 1:
            args += ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={opts.jobs}"]
    else:
        args.append(f"hydra.run.dir={where}")
    if opts.budget == SMOKE:
        args.append("debug=smoke")
        if "seed" in preset.sweep:
            args.append("seed=0")
        if preset.trials is not None:
            args.append("hydra.sweeper.n_trials=2")
    args += [f"{k}={v}" for k, v in reads.items()]
    return args + opts.extra


def rewired(preset: Preset, presets: list[Preset], measured: dict, budget: str) -> dict[str, str]:
    """Paths the preset reads from another preset's fixed run directory, pointed at that preset's newest good run."""
    out = {}
    for key, value in preset.reads.items():
        for other in presets:
            if other.run_dir and value.startswith(other.run_dir) and (other.name, budget) in measured:
                good = measured[(other.name, budget)].good
                if good:
                    out[key] = str(Path(good[-1]["_dir"])) + value[len(other.run_dir):]
    return out


def why_not(preset: Preset, r: Row, opts: Options, data_root: Path) -> str | None:
    """Why a preset is not run now (None: it runs)."""
    given = {e.partition("=")[0].lstrip("+") for e in opts.extra}
    if r.done and not opts.again:
        return "done (measured)" if opts.budget == FULL else "done"
    needed = [k for k in preset.missing if k not in given]
    if needed:
        return f"skipped: needs {', '.join(needed)}=... (see conf/experiment/{preset.name}.yaml; give it after --)"
    absent = missing_data(preset.tasks, data_root)
    if absent:
        return f"skipped: data absent ({', '.join(absent)} under {data_root}; `leedl data check` says how to get them)"
    return None


def run_book(presets: list[Preset], opts: Options, say: Callable[[str], None]) -> dict:
    """Run the presets; returns the state written to DIR/book.json ({preset: what happened})."""
    from leedl_cli.paths import default_data_dir

    opts.out.mkdir(parents=True, exist_ok=True)
    (opts.out / "logs").mkdir(exist_ok=True)
    data_root = opts.data_dir or default_data_dir()
    state_path = opts.out / STATE_FILE
    state: dict = {}
    if state_path.is_file():
        import json

        try:
            state = json.loads(state_path.read_text())
        except ValueError:
            state = {}
    ordered = order_by_needs(presets)
    measured = by_preset(load([opts.out]))
    rows = {p.name: row(p, measured, opts.budget) for p in ordered}
    todo = [p for p in ordered if why_not(p, rows[p.name], opts, data_root) is None]
    estimate_left = sum(rows[p.name].seconds or 0.0 for p in todo) / max(1, opts.jobs)
    say(f"leedl book run: {len(todo)} of {len(ordered)} presets to run ({opts.budget} budget) into {opts.out}; "
        f"about {duration(estimate_left)} by the estimates")
    spent = estimated = 0.0
    started_all = time.time()
    for i, preset in enumerate(ordered, 1):
        r = rows[preset.name]
        reason = why_not(preset, r, opts, data_root)
        if reason is not None:
            say(f"[{i}/{len(ordered)}] {preset.name}: {reason}")
            if reason.startswith("skipped"):
                state[preset.name] = {"status": "skipped", "why": reason, "budget": opts.budget}
            continue
        used = slots(opts.out, preset.name)
        continuing = bool(used) and preset.multirun and not opts.again
        where = used[-1] if continuing else opts.out / (preset.name if not used else f"{preset.name}.{len(used) + 1}")
        args = command(preset, where, continuing, opts, rewired(preset, presets, measured, opts.budget))
        log_path = opts.out / "logs" / f"{preset.name}.log"
        t0 = time.time()
        with open(log_path, "a") as log:
            log.write(f"\n$ {' '.join(args[2:])}\n")
            log.flush()
            code = subprocess.call(args, stdout=log, stderr=subprocess.STDOUT, env={**os.environ})
        took = time.time() - t0
        measured = by_preset(load([opts.out]))
        found = measured.get((preset.name, opts.budget))
        good, bad = (len(found.good), len(found.failed)) if found else (0, 0)
        status = "ok" if code == 0 and good >= r.runs else "failed"
        state[preset.name] = {"status": status, "exit": code, "seconds": round(took, 1), "budget": opts.budget,
                              "dir": str(where), "log": str(log_path), "runs_ok": good, "runs_failed": bad,
                              "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
        write_json_atomic(state_path, state)
        spent += took
        estimated += (r.seconds or took) / max(1, min(opts.jobs, r.runs))
        todo.remove(preset)
        speed = min(5.0, max(0.2, spent / estimated)) if estimated else 1.0
        left = speed * sum((rows[p.name].seconds or 0.0) / max(1, min(opts.jobs, rows[p.name].runs)) for p in todo)
        eta = time.strftime("%H:%M", time.localtime(time.time() + left))
        say(f"[{i}/{len(ordered)}] {preset.name}: {status} — {good} of {r.runs} runs ok"
            + (f", {bad} failed (log: {log_path})" if bad or status != "ok" else "")
            + f", {duration(took)}; {len(todo)} left, ETA {duration(left)} ({eta})")
    say(f"leedl book run: done in {duration(time.time() - started_all)}; table: leedl book report {opts.out}")
    write_json_atomic(state_path, state)
    return state
