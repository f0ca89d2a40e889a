"""What `leedl report` shows and writes: the table per task in the terminal, report.md, report.csv (the groups)
and report_claims.csv (the book's claims and their verdicts), and the one-line results `leedl run` ends with.
Files are written atomically (leedl_cli.atomic)."""
from __future__ import annotations

from pathlib import Path

from leedl_cli.atomic import write_csv_atomic, write_text_atomic
from leedl_cli.report.claims import FAILS, HOLDS, INCONCLUSIVE, NOT_MEASURED, summary_line
from leedl_cli.report.runs import STATUSES, fmt, metric

CLAIM_COLUMNS = ["claim", "where", "metric", "book", "check", "measured", "verdict"]


def where_text(where: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in where.items()) or "all"


def cell(triple: tuple) -> str:
    """A table cell: `m ± s` over the group's runs, the value alone for one run, — for none."""
    mean, std, n = triple
    return fmt(mean, std, n, with_n=False)


def _why(run: dict) -> str:
    if run.get("error"):
        return str(run["error"]).splitlines()[0]
    return "loss became NaN/inf" if run.get("status") == "diverged" else ""


def write_csv(sections: list[tuple[str, list[str], list[dict]]], claims: list[dict], out_dir: Path) -> list[Path]:
    """report.csv: one line per group (of every task); report_claims.csv: one line per book claim and the summary."""
    metrics = list(dict.fromkeys(m for _, ms, _ in sections for m in ms))
    fields = ["task", "group", "runs", *STATUSES, "seeds", "time_s"] + [f"{m} {c}" for m in metrics
                                                                         for c in ("mean", "std", "n")]
    rows = []
    for task, task_metrics, groups in sections:
        for row in groups:
            line = {"task": task, **{k: row[k] for k in ("group", "runs", *STATUSES, "seeds")},
                    "time_s": f"{row['time_s']:.2f}" if row["time_s"] else ""}
            for m in task_metrics:
                mean, std, n = row[m]
                line.update({f"{m} mean": "" if mean is None else mean, f"{m} std": std if n > 1 else "",
                             f"{m} n": n})
            rows.append(line)
    written = [write_csv_atomic(out_dir / "report.csv", fields, rows)]
    if claims:
        lines = [{**{k: c[k] for k in CLAIM_COLUMNS}, "where": where_text(c["where"])} for c in claims]
        lines.append({"claim": "summary", "where": summary_line(claims)})
        written.append(write_csv_atomic(out_dir / "report_claims.csv", CLAIM_COLUMNS, lines))
    return written


def _group_table_md(metrics: list[str], rows: list[dict]) -> list[str]:
    other = any(r["other"] for r in rows)
    head = ["group", "runs", "ok", "diverged", "failed", *(["not finished"] if other else []), *metrics, "time/run (s)"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for row in rows:
        cells = [row["group"], row["runs"], row["ok"], row["diverged"], row["failed"], *([row["other"] or "—"]
                 if other else []), *(cell(row[m]) for m in metrics),
                 f"{row['time_s']:.1f}" if row["time_s"] else "—"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return lines


def markdown(root: Path, sections, claims: list[dict], failed: list[dict], plots: list[Path]) -> str:
    n_runs = sum(r["runs"] for _, _, rows in sections for r in rows)
    n_groups = sum(len(rows) for _, _, rows in sections)
    lines = [f"# leedl report: {root}", "", f"{n_runs} runs in {n_groups} groups"
             + (f" of {len(sections)} tasks." if len(sections) > 1 else "."), ""]
    for task, metrics, rows in sections:
        if len(sections) > 1:
            lines += [f"## task={task}", ""]
        lines += _group_table_md(metrics, rows) + [""]
    if claims:
        lines += ["## The book vs this run", "", "| " + " | ".join(CLAIM_COLUMNS) + " |",
                  "|" + " --- |" * len(CLAIM_COLUMNS)]
        for c in claims:
            cells = [c["claim"], where_text(c["where"]), c["metric"], c["book"], c["check"], c["measured"],
                     f"**{c['verdict']}**" if c["verdict"] else "—"]
            lines.append("| " + " | ".join(str(x).replace("|", "\\|") for x in cells) + " |")
        lines += ["", f"**{summary_line(claims)}**", ""]
    if failed:
        lines += ["## Runs that did not finish ok", ""]
        lines += [f"- `{r['_dir']}`: **{r.get('status')}** — {_why(r)}" for r in failed] + [""]
    if plots:
        lines += ["## Plots", ""] + [f"![{p.stem}]({p.relative_to(root) if p.is_relative_to(root) else p})"
                                     for p in plots]
    return "\n".join(lines).rstrip() + "\n"


def write_markdown(out_dir: Path, text: str) -> Path:
    return write_text_atomic(out_dir / "report.md", text)


def print_table(root: Path, sections, claims: list[dict], failed: list[dict], plots: list[Path]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:   # piped or captured: do not fold the table into 80 columns
        console = Console(width=200)
    for task, metrics, rows in sections:
        other = any(r["other"] for r in rows)
        title = f"leedl report: {root}" + (f" — task={task}" if len(sections) > 1 else "")
        table = Table(title=title)
        for col in ["group", "runs", "ok", "div", "fail", *(["not finished"] if other else []), *metrics, "s/run"]:
            table.add_column(col, overflow="fold")
        for row in rows:
            table.add_row(row["group"], str(row["runs"]), str(row["ok"]), str(row["diverged"]), str(row["failed"]),
                          *([row["other"] or "—"] if other else []), *(cell(row[m]) for m in metrics),
                          f"{row['time_s']:.1f}" if row["time_s"] else "—")
        console.print(table)
    if claims:
        book = Table(title="the book vs this run")
        for col in CLAIM_COLUMNS:
            book.add_column(col, overflow="fold")
        colour = {HOLDS: "green", FAILS: "red", INCONCLUSIVE: "yellow", NOT_MEASURED: "dim"}
        for c in claims:
            v = c["verdict"]
            book.add_row(c["claim"], where_text(c["where"]), c["metric"], str(c["book"]), c["check"], c["measured"],
                         f"[{colour[v]}]{v}[/{colour[v]}]" if v else "—")
        console.print(book)
        console.print(summary_line(claims), markup=False)
    for r in failed:
        colour = "yellow" if r.get("status") in ("running", "interrupted") else "red"
        console.print(f"[{colour}]{r.get('status')}[/{colour}] {r['_dir']}: {_why(r)}", highlight=False)
    for p in plots:
        console.print(f"plot: {p}", highlight=False)


# ---- the end of `leedl run` ------------------------------------------------------------------------
def headline(run: dict) -> dict[str, float]:
    """The numbers a run ends with: its test/* metrics, else the metrics its experiment reports."""
    metrics = run.get("metrics") or {}
    shown = {k: metric(run, k) for k in metrics if k.startswith("test/")}
    if not shown:
        wanted = (run.get("report") or {}).get("metrics") or []
        shown = {k: metric(run, k) for k in wanted}
    return {k: v for k, v in shown.items() if v is not None}


def headline_line(run: dict) -> str:
    numbers = headline(run)
    text = "  ".join(f"{k} {fmt(v, None)}" for k, v in numbers.items()) or "no test metrics recorded"
    return f"run {run.get('status')}: {text}  ({run['_dir']})"


def job_lines(runs: list[dict], limit: int = 30) -> list[str]:
    """One line per job of a sweep: its folder, status and headline metrics (at most `limit` lines)."""
    names = list(dict.fromkeys(k for r in runs for k in headline(r)))[:4]
    rows = [[Path(r["_dir"]).name, str(r.get("status")) + (" (skipped: done before)" if r.get("skipped") else ""), *(fmt(headline(r).get(k), None) for k in names)]
            for r in sorted(runs, key=lambda r: (len(Path(r["_dir"]).name), Path(r["_dir"]).name))]
    widths = [max(len(x) for x in col) for col in zip(["job", "status", *names], *rows)]
    lines = ["  ".join(x.ljust(w) for x, w in zip(["job", "status", *names], widths)).rstrip()]
    lines += ["  ".join(x.ljust(w) for x, w in zip(row, widths)).rstrip() for row in rows[:limit]]
    if len(rows) > limit:
        lines.append(f"... {len(rows) - limit} more jobs")
    return lines
