"""The run records of the book: every results.json under some folders, matched to its preset by the experiment
its run recorded (`choices.experiment`, from Hydra's runtime choices), and told apart by budget (a `debug=smoke`
run is a smoke run, not a measurement).

Of several runs of one job (the same overrides, seed included) the newest counts: a preset measured again replaces
its older numbers, and the jobs of a sweep continued later join those of its first part. Imports nothing heavy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from leedl_cli.errors import LeedlError
from leedl_cli.jobs import job_key, split_override
from leedl_cli.report.runs import RUNNING, load_runs, readable

FULL, SMOKE = "full", "smoke"
GOOD_ENDS = ("ok", "diverged")


def preset_of(run: dict) -> str | None:
    """The experiment preset a run was started with (its recorded choice, else its `experiment=` override)."""
    choice = (run.get("choices") or {}).get("experiment")
    if choice not in (None, "", "null"):
        return str(choice)
    for item in run.get("overrides", []):
        key, value = split_override(item)
        if key == "experiment" and value not in ("", "null"):
            return value
    return None


def budget_of(run: dict) -> str:
    """`full` for a measurement, else the debug option it ran under (`smoke`, `overfit`, `profile`)."""
    debug = (run.get("choices") or {}).get("debug")
    return FULL if debug in (None, "", "null") else str(debug)


def _when(run: dict) -> str:
    return str(run.get("finished") or run.get("started") or "")


@dataclass
class Measured:
    """The runs of one preset at one budget (the newest of each job)."""
    preset: str
    budget: str
    runs: list[dict] = field(default_factory=list)

    @property
    def good(self) -> list[dict]:
        return [r for r in self.runs if r.get("status") in GOOD_ENDS]

    @property
    def running(self) -> list[dict]:
        """Runs still going (their process holds the lock of their directory)."""
        return [r for r in self.runs if r.get("status") == RUNNING]

    @property
    def failed(self) -> list[dict]:
        """Runs that ended other than ok: failed, stopped, killed."""
        return [r for r in self.runs if r.get("status") not in (*GOOD_ENDS, RUNNING)]

    def total_s(self) -> float:
        """Seconds of all its runs one after another (each run's timings.total_s)."""
        return sum(float((r.get("timings") or {}).get("total_s") or 0.0) for r in self.runs)

    def per_run_s(self) -> float | None:
        times = [float((r.get("timings") or {}).get("total_s") or 0.0) for r in self.runs]
        times = [t for t in times if t > 0 and math.isfinite(t)]
        return sum(times) / len(times) if times else None

    def last(self) -> str:
        return max((_when(r) for r in self.runs), default="")

    def first(self) -> str:
        return min((str(r.get("started") or "") for r in self.runs), default="")

    def complete(self, expected: int) -> bool:
        return len(self.good) >= expected


def load(roots: list[Path]) -> list[dict]:
    """The readable run records under the folders that exist, each read once."""
    seen: set[str] = set()
    out = []
    for root in roots:
        if not Path(root).exists():
            continue
        for run in readable(load_runs(Path(root))):
            where = str(Path(run["_dir"]).resolve())
            if where not in seen:
                seen.add(where)
                out.append(run)
    return out


def by_preset(runs: list[dict]) -> dict[tuple[str, str], Measured]:
    """{(preset, budget): its runs, the newest of each job}. Runs of no preset are left out."""
    newest: dict[tuple[str, str], dict[tuple, dict]] = {}
    for run in runs:
        name = preset_of(run)
        if name is None:
            continue
        jobs = newest.setdefault((name, budget_of(run)), {})
        key = job_key(run.get("overrides", []))
        if key not in jobs or _when(run) >= _when(jobs[key]):
            jobs[key] = run
    return {k: Measured(k[0], k[1], sorted(v.values(), key=lambda r: str(r["_dir"]))) for k, v in newest.items()}


def device_of(run: dict) -> str:
    """What a run ran on, as far as its record says: the trainer option (cpu, gpu, ddp, ...) and the host."""
    trainer = (run.get("choices") or {}).get("trainer") or "?"
    where = "GPU" if str(trainer).startswith(("gpu", "cuda")) else "CPU" if str(trainer).startswith("cpu") \
        else str(trainer)
    threads = run.get("threads")
    return f"{where} (trainer={trainer}" + (f", {threads} thread{'s' if threads != 1 else ''}" if threads else "") + \
        f", host {run.get('host', '?')})"


def read_published(path: Path, budget: str = FULL) -> dict[str, dict]:
    """What a report wrote to its claims.json, by preset: {preset: its "presets" record + "claims": its claim rows};
    nothing when the file is absent or was written at another budget. An unreadable file is an error (LeedlError):
    a report over it would lose the presets it records."""
    import json

    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise LeedlError(f"{path}: not readable JSON ({err}); the presets it records would be lost: restore it "
                         f"(git checkout), or pass --fresh to report only the runs under DIR") from err
    if not isinstance(data, dict) or data.get("budget") != budget or not isinstance(data.get("presets"), dict):
        return {}
    found = {name: {**record, "claims": []} for name, record in data["presets"].items() if isinstance(record, dict)}
    for row in data.get("claims", []):
        if isinstance(row, dict) and row.get("preset") in found:
            found[row["preset"]]["claims"].append(row)
    return found
