"""A directory that holds a run is never written by another run.

- Every run holds a lock on `<run dir>/.leedl.lock` for its lifetime (an OS file lock: it goes away with the
  process, also when the process is killed). A second run aimed at a locked directory is refused.
- A run aimed at a directory that already holds a `results.json` is refused, unless it continues that run
  (`resume=`).
- A sweep aimed at a sweep directory that already holds jobs is refused, unless it continues that sweep with
  `skip_done=true`: then the jobs that ended ok are skipped and the others run in fresh job directories (their
  number plus a new suffix), and the earlier `multirun.yaml` is kept beside the new one.

The command line is checked before Hydra creates or writes anything (`claim_directories`); `RunRecord` takes the
lock again (the same process keeps it) so runs started by other launchers are protected too. Imports nothing
heavy.
"""
from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from leedl_cli.errors import LeedlError

LOCK_FILE = ".leedl.lock"
RESULTS_FILE = "results.json"
_HELD: dict[Path, int] = {}   # the lock files this process holds: {run dir: open file descriptor}


class DirectoryInUse(LeedlError):
    """The run directory belongs to another run."""


def hold(run_dir: str | os.PathLike) -> None:
    """Lock `run_dir` for this process (until it ends or `release`); refused when another process holds it."""
    run_dir = Path(run_dir).absolute()
    if run_dir in _HELD:
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        try:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
        finally:
            os.close(fd)
        raise DirectoryInUse(f"{run_dir} is being written by another run (pid {holder}); choose another "
                             f"directory, or wait for that run to end") from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    _HELD[run_dir] = fd


def release(run_dir: str | os.PathLike) -> None:
    fd = _HELD.pop(Path(run_dir).absolute(), None)
    if fd is not None:
        os.close(fd)


def is_locked(run_dir: str | os.PathLike) -> bool:
    """Whether some live process holds `run_dir`'s lock (a killed run's lock is gone with its process)."""
    path = Path(run_dir) / LOCK_FILE
    if Path(run_dir).absolute() in _HELD:
        return True
    if not path.is_file():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def refuse_reuse(run_dir: Path, resuming: bool) -> None:
    """A new run into a directory that holds one (or is being written) is refused with one line."""
    if is_locked(run_dir) and Path(run_dir).absolute() not in _HELD:
        raise DirectoryInUse(f"{run_dir} is being written by another run; choose another directory")
    if not resuming and (run_dir / RESULTS_FILE).is_file():
        raise DirectoryInUse(f"{run_dir} already holds a run; continue it with `leedl run resume={run_dir}`, "
                             f"or choose another directory (leedl never writes over an earlier run)")


def _value(args: list[str], key: str) -> str | None:
    found = [a.partition("=")[2] for a in args if a.lstrip("+").startswith(f"{key}=")]
    return found[-1].strip("'\"") if found else None


def claim_directories(args: list[str]) -> list[str]:
    """Check the directories a `leedl run` command line names (hydra.run.dir / hydra.sweep.dir) before Hydra
    writes into them; lock a single run's directory. Returns the command line to run (a continued sweep gets
    fresh job directories)."""
    multirun = any(a in ("-m", "--multirun") for a in args)
    resuming = _value(args, "resume") not in (None, "", "null")
    if not multirun:
        run_dir = _value(args, "hydra.run.dir")
        if run_dir and "${" not in run_dir:
            refuse_reuse(Path(run_dir), resuming)
            hold(run_dir)
        return args
    sweep_dir = _value(args, "hydra.sweep.dir")
    if not sweep_dir or "${" in sweep_dir or not Path(sweep_dir).is_dir():
        return args
    jobs = [p for p in Path(sweep_dir).iterdir() if (p / RESULTS_FILE).is_file()]
    busy = [p for p in Path(sweep_dir).iterdir() if p.is_dir() and is_locked(p)]
    if busy:
        raise DirectoryInUse(f"hydra.sweep.dir={sweep_dir}: job {busy[0].name} is still running; wait for it, "
                             f"or choose another sweep directory")
    if not jobs:
        return args
    if _value(args, "skip_done") != "true":
        raise DirectoryInUse(f"hydra.sweep.dir={sweep_dir} already holds {len(jobs)} job(s); add skip_done=true "
                             f"to continue that sweep (done jobs are skipped, the others run in new job "
                             f"directories), or choose another hydra.sweep.dir")
    earlier = Path(sweep_dir) / "multirun.yaml"
    if earlier.is_file():
        earlier.rename(earlier.with_name(f"multirun.{time.strftime('%Y%m%d-%H%M%S')}.yaml"))
    return [*args, "hydra.sweep.subdir=${hydra.job.num}_${leedl_uid:}"]
