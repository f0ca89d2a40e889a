"""The book's presets as data: every file of conf/experiment/ read without composing (no torch, no Lightning).

A preset's section of the book comes from `report.section` when it sets one, else from its header comment
("chapter 1.2.1", "ch. 3, section 3.7", "section 5.3 (ch. 5)", ...: the first `section N.N` wins, else the first
`chapter N` / `ch. N`). Its claims are `report.book`; its sweep size is the product of the numbers of values of
`hydra.sweeper.params` (an Optuna search: `n_trials`); the tasks it trains come from its defaults list, a swept
`task` and the swept `budget` options. A preset that includes another preset (`defaults: [other]`) is read on top
of that one.

What a run costs without a measurement: `report.run_minutes` (minutes one run takes on a 2-core CPU with threads=1,
two runs at a time: an estimate of the cost, not a result), else a "N min a run" phrase of the header, else
trainer.max_time.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from leedl_cli.errors import LeedlError

_SECTION = re.compile(r"\bsections?\s+(\d+(?:\.\d+)*)", re.IGNORECASE)
_CHAPTER = re.compile(r"\b(?:chapter|ch\.)\s*(\d+(?:\.\d+)*)", re.IGNORECASE)
_PER_RUN = re.compile(r"(\d+(?:\.\d+)?)(?:-\d+(?:\.\d+)?)?\s*(s|min|h)\b(?: of training)?\s+(?:a|per|each)\s+"
                      r"(?:run|fine-tuning run|direction)", re.IGNORECASE)
_UNIT = {"s": 1.0, "min": 60.0, "h": 3600.0}
ESTIMATE_WHERE = "2 cores"   # where report.run_minutes applies: 2 CPU cores, threads=1, two runs at a time
CHAPTERS = {
    1: "Optimisation: critical points, batch size and momentum, adaptive learning rates",
    2: "Convolutional networks",
    3: "Self-attention",
    4: "The Transformer",
    5: "Self-supervised learning: BERT and GPT",
    6: "Domain adaptation",
    7: "Reinforcement learning",
}


class PresetError(LeedlError):
    """An experiment preset whose YAML cannot be read, or whose section of the book cannot be told."""


@dataclass
class Preset:
    name: str
    path: Path
    section: str                       # "1.2.1"
    title: str                         # the header's first line, without the name
    comment: str                       # the whole header comment
    claims: list[dict] = field(default_factory=list)
    sweep: dict[str, list[str]] = field(default_factory=dict)   # swept key -> values (as the command line spells them)
    runs: int = 1
    trials: int | None = None          # an Optuna search: its number of trials
    tasks: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)   # keys the preset leaves `???`: the user must give them
    run_dir: str | None = None         # a run directory the preset fixes itself (hydra.run.dir)
    reads: dict[str, str] = field(default_factory=dict)   # key -> a path under ${output_root} another preset writes
    max_time_s: float | None = None    # trainer.max_time
    run_minutes: float | None = None   # report.run_minutes: one run's estimated minutes (2 cores, two at a time)
    report: dict = field(default_factory=dict)

    @property
    def chapter(self) -> int:
        return int(self.section.split(".")[0])

    @property
    def multirun(self) -> bool:
        return bool(self.sweep) or self.trials is not None

    def command(self) -> str:
        return f"leedl run experiment={self.name}"

    def section_key(self) -> tuple:
        return tuple(int(p) for p in self.section.split(".")), self.name


def header(path: Path) -> list[str]:
    """The comment lines at the top of a YAML file (without `#` and the Hydra `@package` line)."""
    lines = []
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped.startswith("#"):
            if stripped:
                break
            continue
        text = stripped.lstrip("#").strip()
        if not text.startswith("@package"):
            lines.append(text)
    return lines


def section_of(name: str, first_line: str, report: dict) -> str:
    if report.get("section") is not None:
        return str(report["section"])
    for pattern in (_SECTION, _CHAPTER):
        found = pattern.search(first_line)
        if found and int(found[1].split(".")[0]) in CHAPTERS:
            return found[1]
    raise PresetError(f"conf/experiment/{name}.yaml: its header names no chapter of the book (e.g. 'chapter 1.2.1' "
                      f"or 'ch. 3, section 3.7'); add one, or set report.section: \"N.N\"")


def _load(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise PresetError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(data, dict):
        raise PresetError(f"{path}: expected a mapping at the top")
    return data


def _merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for key, value in top.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def resolved(path: Path, seen: tuple = ()) -> dict:
    """The preset's YAML merged on top of the presets its defaults list includes (`- other_preset`)."""
    data = _load(path)
    base: dict = {}
    for entry in data.get("defaults") or []:
        if isinstance(entry, str) and entry != "_self_":
            other = path.parent / f"{entry}.yaml"
            if other.is_file() and other not in seen:
                base = _merge(base, resolved(other, (*seen, path)))
    return _merge(base, data)


def group_overrides(data: dict, group: str) -> list[str]:
    """The options a defaults list picks for a config group (`override /task: mnist` -> ["mnist"])."""
    found = []
    for entry in data.get("defaults") or []:
        if isinstance(entry, dict):
            for key, value in entry.items():
                if key.split()[-1].strip("/") == group:
                    found.append(str(value))
    return found


def sweep_values(params: dict) -> tuple[dict[str, list[str]], bool]:
    """(swept key -> its values, whether some parameter is a search range rather than a list)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    values: dict[str, list[str]] = {}
    searched = False
    for key, value in (params or {}).items():
        text = "null" if value is None else (str(value).lower() if isinstance(value, bool) else str(value))
        override = parser.parse_overrides([f"{key}={text}"])[0]
        name = override.key_or_group
        if override.is_discrete_sweep():
            values[name] = list(override.sweep_string_iterator())
        elif override.is_sweep_override():
            searched = True
        else:
            values[name] = [text]
    return values, searched


def _walk(node: Any, prefix: str = ""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, node


def _seconds(value: Any) -> float | None:
    """trainer.max_time ("DD:HH:MM:SS") in seconds."""
    parts = str(value).split(":")
    if len(parts) != 4 or not all(p.isdigit() for p in parts):
        return None
    d, h, m, s = (int(p) for p in parts)
    return ((d * 24 + h) * 60 + m) * 60 + s


def run_minutes(path: Path, report: dict) -> float | None:
    """report.run_minutes, checked: a positive number of minutes (None when the preset sets none)."""
    value = report.get("run_minutes")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise PresetError(f"{path}: report.run_minutes={value!r}: expected a positive number of minutes (what one "
                          f"run takes on 2 CPU cores with threads=1, two runs at a time), e.g. run_minutes: 12")
    return float(value)


def read_preset(path: Path, conf: Path) -> Preset:
    lines = header(path)
    first = lines[0] if lines else ""
    name = path.stem
    data = resolved(path)
    report = data.get("report") or {}
    if not isinstance(report, dict):
        raise PresetError(f"{path}: report: expected a mapping (x, metrics, book, run_minutes, ...)")
    sweeper = (data.get("hydra") or {}).get("sweeper") or {}
    sweep, searched = sweep_values(sweeper.get("params") or {})
    trials = int(sweeper.get("n_trials", 0)) if searched or "n_trials" in sweeper else None
    tasks = group_overrides(data, "task")
    tasks += [t for t in sweep.get("task", []) if t not in tasks]
    for budget in sweep.get("budget", []) + group_overrides(data, "budget"):
        budget_file = conf / "budget" / f"{budget}.yaml"
        if budget_file.is_file():
            tasks += [t for t in group_overrides(_load(budget_file), "task") if t not in tasks]
    if "task" in sweep:
        tasks = [t for t in tasks if t in sweep["task"]]
    tasks = tasks or ["digits"]   # conf/config.yaml's default task
    runs = trials if trials is not None else math.prod(len(v) for v in sweep.values()) if sweep else 1
    leaves = dict(_walk({k: v for k, v in data.items() if k not in ("defaults", "hydra", "report")}))
    title = first[len(name):].lstrip(" —-:") if first.startswith(name) else first
    return Preset(
        name=name, path=path, section=section_of(name, first, report), title=title, comment="\n".join(lines),
        claims=list(report.get("book") or []), sweep=sweep, runs=runs, trials=trials, tasks=tasks,
        missing=[k for k, v in leaves.items() if v == "???"],
        run_dir=((data.get("hydra") or {}).get("run") or {}).get("dir"),
        reads={k: v for k, v in leaves.items() if isinstance(v, str) and "${output_root}/" in v},
        max_time_s=_seconds((data.get("trainer") or {}).get("max_time")), run_minutes=run_minutes(path, report),
        report=report)


def read_presets(conf: Path | None = None, chapter: int | None = None, names: list[str] | None = None) -> list[Preset]:
    """Every preset of conf/experiment/, in the book's order (section, then name)."""
    if conf is None:
        from leedl_cli.paths import conf_dir

        conf = conf_dir()
    paths = sorted((conf / "experiment").glob("*.yaml"))
    known = [p.stem for p in paths]
    for name in names or []:
        if name not in known:
            raise PresetError(f"--preset {name}: no such preset in {conf / 'experiment'}; presets: {', '.join(known)}")
    presets = [read_preset(p, conf) for p in paths if not names or p.stem in names]
    if chapter is not None:
        if chapter not in CHAPTERS:
            raise PresetError(f"--chapter {chapter}: the book has chapters {', '.join(map(str, CHAPTERS))}")
        presets = [p for p in presets if p.chapter == chapter]
    return sorted(presets, key=Preset.section_key)


def per_run_estimate(preset: Preset) -> tuple[float | None, str]:
    """(seconds a run takes, where that figure comes from) without a measurement: report.run_minutes, else the
    header's "N min a run", else the preset's trainer.max_time; (None, why) when none says."""
    if preset.run_minutes is not None:
        return preset.run_minutes * 60.0, ESTIMATE_WHERE
    found = _PER_RUN.search(preset.comment.replace("\n", " "))
    if found:
        return float(found[1]) * _UNIT[found[2].lower()], "header"
    if preset.max_time_s:
        return preset.max_time_s, "max_time"
    return None, "no time known"


def needs_of(presets: list[Preset]) -> dict[str, set[str]]:
    """{preset: the presets whose run directory it reads from} (own_pretraining reads own_pretraining_mlm's)."""
    writers = {p.run_dir: p.name for p in presets if p.run_dir}
    return {p.name: {w for d, w in writers.items() for v in p.reads.values() if v.startswith(d) and w != p.name}
            for p in presets}


def order_by_needs(presets: list[Preset]) -> list[Preset]:
    """The presets with each one after the presets whose run directory it reads from (e.g. own_pretraining after
    own_pretraining_mlm); otherwise in the book's order."""
    after = needs_of(presets)
    done: list[Preset] = []   # a cycle (none today) runs in the book's order
    pending = list(presets)
    while pending:
        waiting = {q.name for q in pending}
        ready = [p for p in pending if not after[p.name] & waiting] or pending[:1]
        done.append(ready[0])
        pending.remove(ready[0])
    return done
