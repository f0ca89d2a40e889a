"""`leedl book report [DIR]`: the whole book on pages, from the run records under DIR (default: outputs/).

Runs are matched to presets by the preset each recorded (`choices.experiment`). For every preset: its claims (the
book's number or statement, the measured mean ± std with n, the verdict of leedl_cli.report.claims; for a preset that
states none, the final test/ and val/ numbers each run recorded), its plots (the report package's plot functions),
the command, and when and on what it ran. Written to OUT (docs/results/ by
default): index.md, chapter-N.md, plots/<preset>/*.png, claims.json and book.html (one self-contained page).
Why a claim does not hold here (model size, budget, data) is read from OUT/notes.yaml when it exists
({preset: {claim text: why}}) and printed under the preset's claims for each claim whose verdict is not "holds".
Only measurements count (`--budget smoke` reports debug=smoke runs instead, to check the code path).

A preset with no runs under DIR keeps what OUT/claims.json says it measured before (its claims, the line saying
when and on what it ran, its plots under OUT/plots/): a report of newly measured presets adds them to the pages
without dropping the presets measured on another machine or from records since deleted (`--fresh`: only DIR).
Imports no torch itself (a plot plugin a preset names may).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from leedl_cli.atomic import write_json_atomic, write_text_atomic
from leedl_cli.book.plan import duration
from leedl_cli.book.presets import CHAPTERS, Preset
from leedl_cli.book.records import FULL, Measured, device_of, read_published
from leedl_cli.errors import LeedlError
from leedl_cli.jobs import group_label, split_override
from leedl_cli.report.claims import FAILS, HOLDS, INCONCLUSIVE, NOT_MEASURED, book_rows, summary_line
from leedl_cli.report.render import where_text
from leedl_cli.report.runs import by_task, choose_metrics, metric, metric_names

log = logging.getLogger("leedl")
VERDICTS = (HOLDS, FAILS, INCONCLUSIVE, NOT_MEASURED)


@dataclass
class Entry:
    """One preset on the pages: its runs at the budget reported (none: not measured), claims and plots."""
    preset: Preset
    measured: Measured | None
    claims: list[dict] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)
    problem: str = ""        # a claim or plot that could not be made, in one line
    notes: dict = field(default_factory=dict)   # claim text -> why it does not hold here (notes.yaml)
    kept: dict | None = None   # no runs under DIR: what the earlier report measured (claims.json "presets")
    results: dict | None = None   # a preset with no claim: {"columns": [...], "rows": [[run, value, ...]]}

    @property
    def runs(self) -> list[dict]:
        return self.measured.runs if self.measured else []

    @property
    def has_results(self) -> bool:
        """Measured: at least one run of it ended ok (a preset whose runs were all stopped or failed is not), here
        or in the earlier report kept."""
        return (self.measured is not None and bool(self.measured.good)) or self.kept is not None

    @property
    def state(self) -> str:
        if self.kept is not None:
            return self.kept["state"]
        return "not measured" if self.measured is None else f"{len(self.measured.good)} of {len(self.runs)} runs ok"

    @property
    def n_runs(self) -> int:
        return int(self.kept["runs"]) if self.kept is not None else len(self.runs)

    def anchor(self) -> str:
        return f"preset-{self.preset.name}"


PRESENTATION = ("curves", "curves_x", "plots")   # how the runs are drawn, not what they measured


def _config(entry_runs: list[dict], preset: Preset) -> dict:
    """The report block the runs recorded (what was run: metrics, claims), else the preset's own; the plots the
    preset draws now (its curves and plot functions) over those the runs recorded."""
    for run in entry_runs:
        if isinstance(run.get("report"), dict) and run["report"]:
            return {**run["report"], **{k: preset.report[k] for k in PRESENTATION if preset.report.get(k)}}
    return preset.report


def swept_x(preset: Preset, cfg: dict) -> str | None:
    if cfg.get("x"):
        return str(cfg["x"]).lstrip("+")
    keys = [k for k, v in preset.sweep.items() if len(v) > 1 and k != "seed"]
    return keys[0] if keys else None


def draw(entry: Entry, cfg: dict, plot_dir: Path) -> list[Path]:
    """The preset's plots with the report package's functions; a plot that fails is left out (and said)."""
    from leedl_cli.report.plots import extra_plots, plot_curves, plot_metric_vs_param

    runs = entry.runs
    if not any(r.get("status") == "ok" for r in runs):
        return []
    plot_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    x = swept_x(entry.preset, cfg)
    metrics = choose_metrics(runs, None, cfg)
    tasks = by_task(runs)   # a preset over several tasks: a plot per task (QA's F1 in points, POS's in [0, 1])

    def metric_plots() -> list[Path]:
        return [p for task, task_runs in tasks.items() if x for p in plot_metric_vs_param(
            task_runs, plot_dir, x, metrics, entry.claims, prefix=f"{task}_" if len(tasks) > 1 else "")]

    steps = [("metric plots", metric_plots),
             ("curves", lambda: plot_curves(runs, plot_dir, list(cfg["curves"]), x=str(cfg.get("curves_x") or "step"))
              if cfg.get("curves") else []),
             ("report.plots", lambda: extra_plots(runs, plot_dir, cfg))]
    for what, make in steps:
        try:
            paths += [Path(p) for p in make()]
        except Exception as err:   # one broken plot does not stop the book
            log.warning("book report: %s of %s not drawn: %s", what, entry.preset.name, err)
            entry.problem += f"{what} not drawn ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}). "
    return [p for p in paths if p.is_file() and p.suffix.lower() == ".png"]


def read_notes(path: Path) -> dict[str, dict[str, str]]:
    """notes.yaml: {preset: {claim text: why it does not hold here}} (absent: no notes)."""
    if not path.is_file():
        return {}
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise LeedlError(f"{path}: not YAML ({str(err).splitlines()[0]}); fix or remove it") from err
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise LeedlError(f"{path}: expected {{preset: {{claim text: why}}}}")
    return {str(k): {str(c): str(w) for c, w in v.items()} for k, v in data.items()}


def _kept_claims(rows: list[dict], earlier: list[dict]) -> list[dict]:
    """The preset's claim rows (not measured) with the earlier report's verdicts where the claim is still the same
    (its text and metric; rows that share both are matched in order: the earlier `where` was written from the runs,
    which spell values their own way)."""
    same: dict[tuple, list[dict]] = {}
    for r in earlier:
        same.setdefault((r["claim"], r["metric"]), []).append(r)
    out = []
    for row in rows:
        olds = same.get((row["claim"], row["metric"]))
        old = olds.pop(0) if olds else None
        out.append({**row, "where": old["where"], "measured": old["measured"], "verdict": old["verdict"] or ""}
                   if old else row)
    return out


RESULT_PREFIXES = ("test/", "val/")   # the numbers a preset without claims shows, per run


def results_table(runs: list[dict]) -> dict | None:
    """The final test/ and val/ numbers each run recorded, one row a run (its group and seed): what a preset that
    states no claim measured. None when no run recorded any."""
    columns = sorted((m for m in metric_names(runs)
                      if m.startswith(RESULT_PREFIXES) and any(metric(r, m) is not None for r in runs)),
                     key=lambda m: (not m.startswith(RESULT_PREFIXES[0]), m))
    if not columns:
        return None
    rows = []
    for r in runs:
        group = group_label([o for o in r.get("overrides", []) if split_override(o)[0] != "experiment"])
        group = "" if group == "(defaults)" else group
        label = ", ".join(x for x in (group, f"seed {r['seed']}" if r.get("seed") is not None else "") if x) or "run"
        values = [metric(r, m) for m in columns]
        rows.append([label, *("—" if v is None else f"{v:.4g}" for v in values)])
    return {"columns": columns, "rows": rows}


def build(presets: list[Preset], measured: dict, budget: str, out: Path, plots: bool = True,
          notes: dict | None = None, earlier: dict | None = None) -> list[Entry]:
    entries = []
    notes, earlier = notes or {}, earlier or {}
    for preset in presets:
        found = measured.get((preset.name, budget))
        entry = Entry(preset, found if found and found.runs else None, notes=notes.get(preset.name, {}))
        if entry.measured is None and preset.name in earlier:
            entry.kept = earlier[preset.name]
        cfg = _config(entry.runs, preset)
        try:
            entry.claims = book_rows(entry.runs, {**cfg, "book": cfg.get("book") or preset.claims})
        except LeedlError as err:
            entry.problem += f"claims not checked: {err}. "
            entry.claims = []
        if entry.kept is not None:
            entry.claims = _kept_claims(entry.claims, entry.kept["claims"])
            entry.problem = str(entry.kept.get("problem") or "")
            entry.plots = [out / p for p in entry.kept.get("plots", []) if (out / p).is_file()]
            entry.results = entry.kept.get("results")
        elif entry.measured and not entry.claims:
            entry.results = results_table(entry.measured.good)
        stale = set(entry.notes) - {c["claim"] for c in entry.claims}
        if stale:
            log.warning("book report: notes.yaml names claims %s has not: %s", preset.name, "; ".join(sorted(stale)))
        if plots and entry.measured:
            entry.plots = draw(entry, cfg, out / "plots" / preset.name)
        entries.append(entry)
    return entries


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def ran_on(entry: Entry) -> str:
    if entry.kept is not None:
        return str(entry.kept["ran"])
    runs = entry.runs
    first = min((str(r.get("started") or "") for r in runs), default="")
    last = max((str(r.get("finished") or r.get("started") or "") for r in runs), default="")
    devices = sorted({device_of(r) for r in runs})
    versions = runs[-1].get("versions") or {}
    shown = ", ".join(f"{k} {versions[k]}" for k in ("python", "torch", "pytorch-lightning", "transformers", "leedl")
                      if k in versions)
    good = len(entry.measured.good)
    bad = len(runs) - good   # failed, stopped, killed or still running
    budget = "" if entry.measured.budget == FULL else f" at the {entry.measured.budget} budget (not a measurement)"
    return (f"{len(runs)} runs ({good} ok" + (f", {bad} did not end ok" if bad else "") + f"){budget}, "
            f"{first.replace('T', ' ')} to {last.replace('T', ' ')}, {duration(entry.measured.total_s())} of runs; "
            f"on {'; '.join(devices)}; {shown}")


def claim_table(claims: list[dict]) -> list[str]:
    lines = ["| claim | the book | measured (mean ± std, n) | verdict |", "| --- | --- | --- | --- |"]
    for c in claims:
        where = f" ({where_text(c['where'])})" if c["where"] else ""
        lines.append(f"| {_cell(c['claim'] + where)} | {_cell(c['book'] or '—')} | {_cell(c['measured'])} | "
                     f"{'**' + c['verdict'] + '**' if c['verdict'] else '—'} |")
    return lines


def preset_section(entry: Entry, page_dir: Path) -> list[str]:
    p = entry.preset
    lines = [f'<a id="{entry.anchor()}"></a>', "", f"### {p.section} `{p.name}`", "", p.title, "",
             f"Command: `{p.command()}`" + (f" (needs {', '.join(k + '=...' for k in p.missing)})" if p.missing else ""),
             ""]
    if entry.measured is None and entry.kept is None:
        lines += [f"**Not measured yet.** `leedl book run --preset {p.name}` runs it ({p.runs} runs).", ""]
    else:
        lines += [f"Ran: {ran_on(entry)}.", ""]
    if entry.claims:
        lines += claim_table(entry.claims) + ["", f"{summary_line(entry.claims)}.", ""]
        lines += why_lines(entry)
    elif not p.claims:
        lines += ["This preset states no claim to check: its tables and plots are the result.", ""]
        if entry.results:
            lines += results_lines(entry.results)
    if entry.problem:
        lines += [f"Note: {entry.problem.strip()}", ""]
    lines += [f"![{p.name}: {path.stem}]({path.relative_to(page_dir).as_posix()})" for path in entry.plots]
    return lines + ([""] if entry.plots else [])


def results_lines(results: dict) -> list[str]:
    cols = results["columns"]
    return [f"| run | {' | '.join(cols)} |", f"| {' | '.join('---' for _ in range(len(cols) + 1))} |",
            *(f"| {' | '.join(_cell(v) for v in row)} |" for row in results["rows"]), ""]


def why_lines(entry: Entry) -> list[str]:
    """Why each claim that does not hold (or is inconclusive) here does not, from notes.yaml."""
    whys = [(c["claim"], c["verdict"], entry.notes[c["claim"]]) for c in entry.claims
            if c["verdict"] in (FAILS, INCONCLUSIVE) and c["claim"] in entry.notes]
    return [f"- *{claim}* — {verdict} here: {why}" for claim, verdict, why in whys] + ([""] if whys else [])


def chapter_claims(entries: list[Entry]) -> list[dict]:
    return [c for e in entries for c in e.claims]


def chapter_page(chapter: int, entries: list[Entry], page_dir: Path) -> str:
    claims = chapter_claims(entries)
    lines = [f"# Chapter {chapter}: {CHAPTERS[chapter]}", "",
             "[All chapters](index.md) · [one page with every plot](book.html)", "",
             f"**{summary_line(claims)}** over {len(entries)} presets.", ""]
    lines += ["| section | preset | claims | state |", "| --- | --- | --- | --- |"]
    for e in entries:
        lines.append(f"| {e.preset.section} | [{e.preset.name}](#{e.anchor()}) | "
                     f"{summary_line(e.claims) if e.claims else '—'} | {e.state} |")
    lines += [""]
    for e in entries:
        lines += preset_section(e, page_dir)
    return "\n".join(lines).rstrip() + "\n"


def kept_line(entries: list[Entry]) -> str:
    kept = [e.preset.name for e in entries if e.kept is not None]
    return (f"{len(kept)} presets without runs there keep what the earlier report measured (their claims, plots "
            f"and the line saying when and on what they ran). ") if kept else ""


def index_page(by_chapter: dict[int, list[Entry]], source: str, budget: str) -> str:
    everything = [e for es in by_chapter.values() for e in es]
    lines = ["# The book, measured", "",
             f"What leedl measured for each figure and table of the LeeDL book, from the run records under "
             f"`{source}`" + ("" if budget == FULL else f" (the {budget} budget: checks of the code path, not "
                                                          f"measurements)") + ". " + kept_line(everything) +
             "Written by `leedl book report`.", "",
             f"**{summary_line(chapter_claims(everything))}** (the whole book). One page with every plot: "
             f"[book.html](book.html); the claims as data: [claims.json](claims.json).", "",
             "| chapter | presets | measured | claims |", "| --- | --- | --- | --- |"]
    for chapter, entries in by_chapter.items():
        done = sum(e.has_results for e in entries)
        lines.append(f"| [{chapter}. {CHAPTERS[chapter]}](chapter-{chapter}.md) | {len(entries)} | {done} | "
                     f"{summary_line(chapter_claims(entries))} |")
    never = [e for e in everything if not e.has_results]
    if never:
        lines += ["", "## Not measured yet", "", "`leedl book run` runs these (`leedl book plan` says how long):", ""]
        lines += [f"- [{e.preset.name}](chapter-{e.preset.chapter}.md#{e.anchor()}) ({e.preset.section}, "
                  f"{e.preset.runs} runs)" for e in never]
    return "\n".join(lines).rstrip() + "\n"


def claims_json(entries: list[Entry], budget: str, out: Path) -> dict:
    rows = []
    presets = {e.preset.name: {"ran": ran_on(e), "state": e.state, "runs": e.n_runs,
                               "total_s": round(e.measured.total_s(), 1) if e.measured else e.kept.get("total_s"),
                               "last": e.measured.last() if e.measured else e.kept.get("last"),
                               "plots": [p.relative_to(out).as_posix() for p in e.plots], "problem": e.problem.strip(),
                               **({"results": e.results} if e.results else {})}
               for e in entries if e.has_results}
    for e in entries:
        for c in e.claims:
            rows.append({"chapter": e.preset.chapter, "section": e.preset.section, "preset": e.preset.name,
                         "claim": c["claim"], "metric": c["metric"], "where": c["where"], "book": c["book"],
                         "check": c["check"], "measured": c["measured"], "verdict": c["verdict"] or None,
                         "why": e.notes.get(c["claim"]) if c["verdict"] in (FAILS, INCONCLUSIVE) else None,
                         "runs": e.n_runs, "budget": budget if e.has_results else None})
    counts = {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS}
    return {"budget": budget, "summary": summary_line(chapter_claims(entries)), "counts": counts, "claims": rows,
            "presets": presets}


def write_book(presets: list[Preset], measured: dict, out: Path, source: str, budget: str = FULL,
               plots: bool = True, embed: bool = True, keep_earlier: bool = True) -> list[Path]:
    """Write the pages; returns the paths written (index first). `keep_earlier`: presets with no runs under the
    source keep what OUT/claims.json recorded of them."""
    from leedl_cli.book.html import html_page

    earlier = read_published(out / "claims.json", budget) if keep_earlier else {}
    out.mkdir(parents=True, exist_ok=True)
    entries = build(presets, measured, budget, out, plots, read_notes(out / "notes.yaml"), earlier)
    by_chapter: dict[int, list[Entry]] = {}
    for e in entries:
        by_chapter.setdefault(e.preset.chapter, []).append(e)
    written = [write_text_atomic(out / "index.md", index_page(by_chapter, source, budget))]
    for chapter, chapter_entries in by_chapter.items():
        written.append(write_text_atomic(out / f"chapter-{chapter}.md", chapter_page(chapter, chapter_entries, out)))
    written.append(write_json_atomic(out / "claims.json", claims_json(entries, budget, out)))
    written.append(write_text_atomic(out / "book.html", html_page(by_chapter, source, budget,
                                                                    None if embed else out)))
    return written
