"""`leedl book plan`: one row per preset of conf/experiment/: its section of the book, its claims, how many runs it
makes, how long they take (measured, from the newest run records of the preset; else an estimate: the preset's
report.run_minutes, its header's "N min a run" or its trainer.max_time), whether it has been measured, and the
command that runs it. A preset with no run records here but measured in the published results (docs/results/
claims.json, written by `leedl book report`) takes its time from there and says so. Imports no torch or Lightning.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from leedl_cli.book.presets import CHAPTERS, Preset, per_run_estimate
from leedl_cli.book.records import FULL, SMOKE, Measured, read_published
from leedl_cli.errors import LeedlError

GUESS_S = 60.0          # a run's time when no measurement, report.run_minutes, header nor trainer.max_time says
SMOKE_PER_RUN_S = 4.0   # a debug=smoke run, without a measurement of its own
SMOKE_START_S = 15.0    # starting one `leedl run` process (imports, config checks)
GUESS = "estimate (a guess: 1 min a run; set report.run_minutes)"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass
class Row:
    preset: Preset
    measured: Measured | None   # the runs at the budget asked about (None: none)
    runs: int                   # runs at that budget
    seconds: float | None       # the time of all its runs, one after another
    source: str                 # "measured" or "estimate (...)"
    published: bool = False     # no records here, measured in the published results

    @property
    def done(self) -> bool:
        return self.measured is not None and self.measured.complete(self.runs)

    def state(self) -> str:
        if self.measured is None or not self.measured.runs:
            return "in docs/results" if self.published else "not measured"
        good, n = len(self.measured.good), self.runs
        failed, running = len(self.measured.failed), len(self.measured.running)
        text = "measured" if good >= n else f"partly ({good} of {n})"
        return text + (f", {running} running" if running else "") + (f", {failed} failed" if failed else "")


def smoke_runs(preset: Preset) -> int:
    """Runs of a `--budget smoke` book run: one seed, two trials of a search."""
    if preset.trials is not None:
        return 2
    return max(1, preset.runs // max(1, len(preset.sweep.get("seed", [None]))))


def published(path: Path | None = None) -> dict[str, dict]:
    """The presets measured in the published results ({preset: its claims.json record}); none when the file is
    absent or unreadable (a wheel install has no docs/)."""
    from leedl_cli.paths import conf_dir

    try:
        return read_published(path or conf_dir().parent / "docs" / "results" / "claims.json")
    except LeedlError:
        return {}


def row(preset: Preset, measured: dict[tuple[str, str], Measured], budget: str = FULL,
        elsewhere: dict[str, dict] | None = None) -> Row:
    runs = preset.runs if budget == FULL else smoke_runs(preset)
    found = measured.get((preset.name, budget))
    per_run = found.per_run_s() if found else None
    if per_run is not None:
        return Row(preset, found, runs, per_run * runs, "measured" + (f" {found.last()[:10]}" if found.last() else ""))
    record = (elsewhere or {}).get(preset.name) if budget == FULL and not (found and found.runs) else None
    if record and float(record.get("total_s") or 0) > 0 and record.get("runs"):
        return Row(preset, found, runs, float(record["total_s"]) / int(record["runs"]) * runs,
                   f"measured {str(record.get('last') or '')[:10]} (docs/results)".replace("  ", " "), published=True)
    if budget == SMOKE:
        return Row(preset, found, runs, SMOKE_START_S + SMOKE_PER_RUN_S * runs, "estimate (smoke)")
    seconds, where = per_run_estimate(preset)
    shown = record is not None
    if seconds is None:
        return Row(preset, found, runs, GUESS_S * runs, GUESS, published=shown)
    return Row(preset, found, runs, seconds * runs, f"estimate ({where}: {duration(seconds)} a run)", published=shown)


def plan_lines(rows: list[Row], show_claims: bool = False) -> list[str]:
    head = ["section", "preset", "claims", "runs", "time", "", "state", "command"]
    lines: list[str] = []
    table = [[r.preset.section, r.preset.name, str(len(r.preset.claims)), str(r.runs), duration(r.seconds), r.source,
              r.state(), r.preset.command()] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *table)] if table else [len(h) for h in head]
    chapter = None
    for r, cells in zip(rows, table):
        if r.preset.chapter != chapter:
            chapter = r.preset.chapter
            lines += ["" if lines else "", f"chapter {chapter} — {CHAPTERS[chapter]}",
                      "  " + "  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip()]
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip())
        if show_claims:
            lines += [f"      - {c.get('claim', '')} (book: {c.get('book', '—')})" for c in r.preset.claims]
        if r.preset.missing:
            lines.append(f"      needs {', '.join(f'{k}=...' for k in r.preset.missing)} (see its header)")
    return lines[1:] if lines and not lines[0] else lines


def totals_line(rows: list[Row]) -> str:
    done = sum(r.done for r in rows)
    left = [r for r in rows if not r.done]
    shown = sum(r.published for r in rows)
    more = f" ({shown} more in docs/results)" if shown else ""
    return (f"{len(rows)} presets, {sum(len(r.preset.claims) for r in rows)} claims, {sum(r.runs for r in rows)} runs; "
            f"{done} measured here{more}; the {len(left)} not yet measured here take about "
            f"{duration(sum(r.seconds or 0 for r in left))} one run at a time")


def default_roots(extra: list[Path]) -> list[Path]:
    import os

    return [Path(os.environ.get("LEEDL_OUTPUT_DIR", "outputs")), *extra]
