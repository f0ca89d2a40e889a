"""`leedl book run`: run the presets not yet measured, one `leedl run experiment=NAME` each, in the book's order.

Resumable and failure-tolerant: a preset whose runs all ended ok (at this budget) is skipped; a sweep stopped
half-way is continued in its own sweep directory with `skip_done=true`; a preset that fails is recorded in
DIR/book.json (its exit status and log) and the others go on. Presets whose data sets are absent, or that need a
value only the user can give (`???`, e.g. decoding_strategies' trained model), are skipped with the reason.

K jobs run at a time. A preset takes the free job slots its sweep can use (a sweep of several runs goes through
Hydra's joblib launcher) and the next preset starts as soon as a slot is free; at the smoke budget, where starting a
process costs more than the runs, every preset takes one slot and runs its sweep in one process. A preset that reads
another preset's run waits for it.

Every preset goes to its own directory DIR/<preset> (DIR/<preset>.2, ... for a fresh measurement with --all); the
runs record the preset (`choices.experiment`), which is how `leedl book report` finds them. K jobs of a sweep run
at a time through Hydra's joblib launcher. A preset that reads what another preset wrote under
`${output_root}` (own_pretraining reads own_pretraining_mlm's model) runs after it and is pointed at its run.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from leedl_cli.atomic import write_json_atomic
from leedl_cli.book.plan import Row, duration, row
from leedl_cli.book.presets import Preset, needs_of, order_by_needs
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


def command(preset: Preset, where: Path, continuing: bool, opts: Options, reads: dict[str, str],
            jobs: int | None = None) -> list[str]:
    """The `leedl run` command line of one preset, its sweep `jobs` runs at a time (default: --jobs)."""
    jobs = opts.jobs if jobs is None else jobs
    threads = opts.threads
    if whole_machine(preset, opts.budget):   # its slots as threads of one run at a time
        jobs, threads = 1, threads and threads * jobs
    args = [sys.executable, "-m", "leedl_cli.cli", "run", f"experiment={preset.name}", f"output_root={opts.out}"]
    if threads:
        args.append(f"threads={threads}")
    if preset.multirun:   # -m: some presets (hpo_digits) leave hydra.mode to the command line
        args[4:4] = ["-m"]
        args.append(f"hydra.sweep.dir={where}")
        if continuing:
            args.append("skip_done=true")
        if jobs > 1:
            args += ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={jobs}"]
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
    if r.measured is not None and r.measured.running:
        return (f"running now ({len(r.measured.running)} run(s) in progress, started by another leedl book run; "
                "run it again when they end)")
    needed = [k for k in preset.missing if k not in given]
    if needed:
        return f"skipped: needs {', '.join(needed)}=... (see conf/experiment/{preset.name}.yaml; give it after --)"
    absent = missing_data(preset.tasks, data_root)
    if absent:
        return f"skipped: data absent ({', '.join(absent)} under {data_root}; `leedl data check` says how to get them)"
    return None


def save_state(path: Path, mine: dict) -> dict:
    """Write this book run's entries into DIR/book.json, keeping the entries another book run into the same DIR
    wrote meanwhile (read, update, replace atomically, under a lock); returns the whole state."""
    import fcntl
    import json

    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            state = json.loads(path.read_text()) if path.is_file() else {}
        except ValueError:
            state = {}
        state.update(mine)
        write_json_atomic(path, state)
    return state


def whole_machine(preset: Preset, budget: str) -> bool:
    """A preset whose runs stop at a wall-clock time (trainer.max_time) at the full budget: its budget is minutes of
    the whole machine ("30 min of training per run on 2 cores"), so it takes every job slot and runs its sweep one
    run at a time with the threads of all the slots; two such runs side by side would each train on half of it."""
    return budget != SMOKE and preset.max_time_s is not None


def signal_group(process: subprocess.Popen, signum: int) -> None:
    """Send `signum` to a preset's process group: `leedl run` and the joblib workers of its sweep."""
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:   # already gone, workers and all
        pass


def job_slots(preset: Preset, runs: int, free: int, budget: str, total: int | None = None) -> int:
    """How many of the `free` job slots (of `total`) a preset takes: one at the smoke budget, all `total` for a
    wall-clock-budgeted preset (0 while some are busy: it waits for them), else as many as its runs can use."""
    if whole_machine(preset, budget):
        total = free if total is None else total
        return total if free >= total else 0
    return 1 if budget == SMOKE or not preset.multirun else max(1, min(free, runs))


@dataclass
class _Running:
    preset: Preset
    index: int
    where: Path
    jobs: int
    started: float
    process: subprocess.Popen
    log: object


def run_book(presets: list[Preset], opts: Options, say: Callable[[str], None], poll_s: float = 0.5) -> dict:
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
    index = {p.name: i for i, p in enumerate(ordered, 1)}
    needs = needs_of(presets)
    measured = by_preset(load([opts.out]))
    rows = {p.name: row(p, measured, opts.budget) for p in ordered}

    def machine_seconds(preset: Preset) -> float:   # slot-seconds: a whole-machine preset holds every slot
        seconds = rows[preset.name].seconds or 0.0
        return seconds * opts.jobs if whole_machine(preset, opts.budget) else seconds
    todo: list[Preset] = []
    for preset in ordered:
        reason = why_not(preset, rows[preset.name], opts, data_root)
        if reason is None:
            todo.append(preset)
            continue
        if reason.startswith("skipped"):
            state[preset.name] = {"status": "skipped", "why": reason, "budget": opts.budget}
    estimate_left = sum(machine_seconds(p) for p in todo) / max(1, opts.jobs)
    say(f"leedl book run: {len(todo)} of {len(ordered)} presets to run ({opts.budget} budget, {opts.jobs} job(s) at "
        f"a time) into {opts.out}; about {duration(estimate_left)} by the estimates")
    for preset in ordered:
        if preset not in todo:
            say(f"[{index[preset.name]}/{len(ordered)}] {preset.name}: "
                f"{state.get(preset.name, {}).get('why') or why_not(preset, rows[preset.name], opts, data_root)}")
    spent = estimated = 0.0
    started_all = time.time()
    running: list[_Running] = []
    pending = list(todo)

    def start(preset: Preset, jobs: int) -> None:
        used = slots(opts.out, preset.name)
        continuing = bool(used) and preset.multirun and not opts.again
        where = used[-1] if continuing else opts.out / (preset.name if not used else f"{preset.name}.{len(used) + 1}")
        args = command(preset, where, continuing, opts,
                       rewired(preset, presets, by_preset(load([opts.out])), opts.budget), jobs=jobs)
        log = open(opts.out / "logs" / f"{preset.name}.log", "a")
        log.write(f"\n$ {' '.join(args[2:])}\n")
        log.flush()
        # its own process group: stopping the preset reaches its sweep's worker processes too, not only `leedl run`
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env={**os.environ},
                                   start_new_session=True)
        running.append(_Running(preset, index[preset.name], where, jobs, time.time(), process, log))
        pace = (f"one at a time on all {jobs} slots: trainer.max_time is of the whole machine"
                if whole_machine(preset, opts.budget) else f"{jobs} at a time")
        say(f"[{index[preset.name]}/{len(ordered)}] {preset.name}: started ({rows[preset.name].runs} run(s), {pace}) "
            f"-> {where}")

    def finish(job: _Running, code: int) -> None:
        nonlocal spent, estimated
        job.log.close()
        took = time.time() - job.started
        r = rows[job.preset.name]
        found = by_preset(load([opts.out])).get((job.preset.name, opts.budget))
        good, bad = (len(found.good), len(found.failed)) if found else (0, 0)
        status = "ok" if code == 0 and good >= r.runs else "failed"
        log_path = opts.out / "logs" / f"{job.preset.name}.log"
        state[job.preset.name] = {"status": status, "exit": code, "seconds": round(took, 1), "budget": opts.budget,
                                  "dir": str(job.where), "log": str(log_path), "runs_ok": good, "runs_failed": bad,
                                  "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
        save_state(state_path, state)
        spent += took * job.jobs
        estimated += machine_seconds(job.preset) or took * job.jobs
        speed = min(5.0, max(0.2, spent / estimated)) if estimated else 1.0
        left_work = sum(machine_seconds(p) for p in pending)
        left_work += sum(max(0.0, machine_seconds(j.preset) - (time.time() - j.started) * j.jobs)
                         for j in running)
        left = speed * left_work / max(1, opts.jobs)
        eta = time.strftime("%H:%M", time.localtime(time.time() + left))
        say(f"[{job.index}/{len(ordered)}] {job.preset.name}: {status} — {good} of {r.runs} runs ok"
            + (f", {bad} failed (log: {log_path})" if bad or status != "ok" else "")
            + f", {duration(took)}; {len(pending) + len(running)} left, ETA {duration(left)} ({eta})")

    def stop(signum, frame):   # `kill` of the book run stops its runs too (the finally below), not only itself
        raise SystemExit(128 + signum)

    main = threading.current_thread() is threading.main_thread()
    before = signal.signal(signal.SIGTERM, stop) if main else None
    try:
        while pending or running:
            for job in list(running):
                code = job.process.poll()
                if code is not None:
                    running.remove(job)
                    finish(job, code)
            free = opts.jobs - sum(j.jobs for j in running)
            busy = {p.name for p in pending} | {j.preset.name for j in running}
            for preset in list(pending):
                if free < 1:
                    break
                if needs[preset.name] & (busy - {preset.name}):
                    continue   # waits for the preset whose run it reads
                jobs = job_slots(preset, rows[preset.name].runs, free, opts.budget, opts.jobs)
                if jobs < 1:
                    break   # it waits for the whole machine, and the presets after it wait with it
                pending.remove(preset)
                start(preset, jobs)
                free -= jobs
            if running:
                time.sleep(poll_s)
    finally:
        for job in running:   # interrupted: stop the runs (each records itself as stopped) and keep the state
            signal_group(job.process, signal.SIGTERM)
        for job in running:
            try:
                job.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                signal_group(job.process, signal.SIGKILL)
                job.process.wait()
            job.log.close()
            state[job.preset.name] = {"status": "stopped", "budget": opts.budget, "dir": str(job.where)}
        if running:
            save_state(state_path, state)
        if main:
            signal.signal(signal.SIGTERM, before)
    say(f"leedl book run: done in {duration(time.time() - started_all)}; table: leedl book report {opts.out}")
    return save_state(state_path, state)
