"""How a `leedl run` command ended, read from the run records it wrote, never from memory (a sweep's jobs may run
in other processes): its exit status and the headline numbers it prints.

The command fixes where its runs go before Hydra starts (the run or sweep directory its config composes to, passed
on as `hydra.run.dir=` / `hydra.sweep.dir=`), and reads back the results.json files written there since it began.
Imports nothing heavy.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from leedl_cli.report.render import headline_line, job_lines
from leedl_cli.report.runs import records_since

GOOD_ENDS = ("ok", "diverged")   # a diverged run is an outcome some experiments expect, recorded, not an error


def _given(args: list[str], key: str) -> str | None:
    found = [a.partition("=")[2] for a in args if a.lstrip("+").startswith(f"{key}=")]
    return found[-1] if found else None


def fix_output_dir(args: list[str], base: Any, multirun: bool) -> tuple[list[str], Path | None]:
    """(the command line with its run or sweep directory fixed, that directory); None when the config cannot say."""
    from omegaconf import OmegaConf

    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    given = _given(args, key)
    if given and "${" not in given:
        return args, Path(given.strip("'\""))
    try:
        where = OmegaConf.select(base, key) if base is not None else None
    except Exception:   # an interpolation only Hydra's running job can resolve: read it back another way
        where = None
    if not where:
        return args, None
    quoted = "'" + str(where).replace("\\", "\\\\").replace("'", "\\'") + "'"
    return [*args, f"{key}={quoted}"], Path(str(where))


def runs_of_this_command(where: Path | None, started: float, output_root: str) -> list[dict]:
    """The records this command wrote: under its fixed directory, else (it could not be fixed) the ones under the
    output root written since it began by this very process."""
    if where is not None:
        return records_since(where, started)
    return [r for r in records_since(Path(output_root), started) if r.get("pid") == os.getpid()]


def end_of_run(runs: list[dict], multirun: bool, where: Path | None) -> tuple[int, list[str], list[str]]:
    """(exit status, lines for stdout, lines for stderr) of a finished `leedl run` command."""
    if not runs:
        return (0 if multirun else 1), [], [f"leedl run: no results.json was written{f' in {where}' if where else ''}"
                                             f"; see the log above"]
    bad = [r for r in runs if r.get("status") not in GOOD_ENDS]
    if not multirun:
        run = runs[-1]
        if bad:
            return 1, [], [f"leedl run: {run.get('status')}: {run.get('error', 'see the log')}",
                           f"  run directory: {run['_dir']}"]
        return 0, [headline_line(run)], []
    out = job_lines(runs)
    if not bad:
        return 0, out, []
    kinds = {s: sum(r.get("status") == s for r in bad) for s in dict.fromkeys(r.get("status") for r in bad)}
    what = "failed" if set(kinds) == {"failed"} else \
        "did not end ok (" + ", ".join(f"{n} {s}" for s, n in kinds.items()) + ")"
    return 1, out, [f"leedl run: {len(bad)} of {len(runs)} jobs {what} (see `leedl report {where or ''}`)"]
