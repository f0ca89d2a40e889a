"""book.html: the whole book on one self-contained page that opens from disk without a server.

Plots are embedded as base64 `data:image/png` URIs; a table of contents links to every chapter and preset; a few
lines of inline JavaScript show only the claims with the verdicts ticked. No external file, font or script.
With `leedl book report --link-plots` the images are the plots/ files beside the page instead (relative links):
the page still opens from disk, stays small enough to keep in git (docs/results/ is written that way).
"""
from __future__ import annotations

import base64
from html import escape
from pathlib import Path

from leedl_cli.book.presets import CHAPTERS
from leedl_cli.book.records import FULL
from leedl_cli.report.claims import summary_line
from leedl_cli.report.render import where_text

STYLE = """body{font-family:system-ui,sans-serif;max-width:70em;margin:auto;padding:1em;line-height:1.4}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .5em;vertical-align:top}
th{background:#f4f4f4}code{background:#f4f4f4;padding:0 .2em}img{max-width:100%;margin:.5em 0}
nav{background:#fafafa;border:1px solid #ddd;padding:.5em 1em}.v-holds{color:#176317}.v-fails{color:#a11}
.v-inconclusive{color:#8a6100}.v-not-measured,.muted{color:#777}#filter label{margin-right:1em}"""

SCRIPT = """function applyFilter(){
  var shown = {};
  document.querySelectorAll('#filter input').forEach(function(b){ shown[b.value] = b.checked; });
  document.querySelectorAll('tr[data-verdict]').forEach(function(r){
    r.style.display = shown[r.getAttribute('data-verdict')] ? '' : 'none'; });
}
document.querySelectorAll('#filter input').forEach(function(b){ b.addEventListener('change', applyFilter); });"""

FILTERS = (("holds", "holds"), ("fails", "does not hold"), ("inconclusive", "inconclusive"),
           ("not-measured", "not measured"), ("none", "no check"))


def verdict_class(verdict: str) -> str:
    for css, text in FILTERS:
        if verdict == text:
            return css
    return "none"


def data_uri(path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def image_src(path: Path, page_dir: Path | None) -> str:
    """The plot embedded as a data URI, or (page_dir given) its path relative to the page."""
    return data_uri(path) if page_dir is None else path.relative_to(page_dir).as_posix()


def _claims_table(claims: list[dict]) -> list[str]:
    out = ["<table><tr><th>claim</th><th>the book</th><th>measured (mean ± std, n)</th><th>verdict</th></tr>"]
    for c in claims:
        css = verdict_class(c["verdict"])
        where = f" <span class=muted>({escape(where_text(c['where']))})</span>" if c["where"] else ""
        out.append(f'<tr data-verdict="{css}"><td>{escape(c["claim"])}{where}</td><td>{escape(str(c["book"] or "—"))}'
                   f'</td><td>{escape(c["measured"])}</td><td class="v-{css}">{escape(c["verdict"] or "—")}</td></tr>')
    return out + ["</table>"]


def _preset(entry, page_dir: Path | None = None) -> list[str]:
    from leedl_cli.book.report import ran_on, why_lines

    p = entry.preset
    out = [f'<section id="{entry.anchor()}"><h3>{escape(p.section)} <code>{escape(p.name)}</code></h3>',
           f"<p>{escape(p.title)}</p>", f"<p>Command: <code>{escape(p.command())}</code></p>"]
    if entry.measured is None and entry.kept is None:
        out.append(f'<p class=muted><b>Not measured yet.</b> <code>leedl book run --preset {escape(p.name)}</code> '
                   f"runs it ({p.runs} runs).</p>")
    else:
        out.append(f"<p class=muted>Ran: {escape(ran_on(entry))}.</p>")
    if entry.claims:
        out += _claims_table(entry.claims) + [f"<p>{escape(summary_line(entry.claims))}.</p>"]
        whys = [line[2:] for line in why_lines(entry) if line]
        if whys:
            out.append("<ul>" + "".join(f"<li>{escape(w.replace('*', ''))}</li>" for w in whys) + "</ul>")
    elif entry.results:
        out += ["<p>This preset states no claim to check: its tables and plots are the result.</p>", "<table><tr><th>run</th>"
                + "".join(f"<th>{escape(c)}</th>" for c in entry.results["columns"]) + "</tr>",
                *("<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in row) + "</tr>" for row in entry.results["rows"]),
                "</table>"]
    if entry.problem:
        out.append(f"<p class=muted>Note: {escape(entry.problem.strip())}</p>")
    out += [f'<img alt="{escape(p.name)}: {escape(path.stem)}" src="{image_src(path, page_dir)}">' for path in entry.plots]
    return out + ["</section>"]


def html_page(by_chapter: dict, source: str, budget: str, page_dir: Path | None = None) -> str:
    """The whole book on one page: plots embedded (self-contained), or linked relative to `page_dir` (the page then
    opens from disk beside its plots/ folder; a page kept in git stays small)."""
    from leedl_cli.book.report import kept_line

    everything = [e for es in by_chapter.values() for e in es]
    claims = [c for e in everything for c in e.claims]
    toc = ["<nav><b>Contents</b><ul>"]
    for chapter, entries in by_chapter.items():
        toc.append(f'<li><a href="#chapter-{chapter}">{chapter}. {escape(CHAPTERS[chapter])}</a><ul>')
        toc += [f'<li><a href="#{e.anchor()}">{escape(e.preset.section)} {escape(e.preset.name)}</a>'
                + ("" if e.measured or e.kept else ' <span class=muted>(not measured)</span>') + "</li>" for e in entries]
        toc.append("</ul></li>")
    toc.append("</ul></nav>")
    body = ["<h1>The book, measured</h1>",
            f"<p>What leedl measured for each figure and table of the LeeDL book, from the run records under "
            f"<code>{escape(source)}</code>" + ("" if budget == FULL else f" (the {escape(budget)} budget: checks of "
                                                                           f"the code path, not measurements)")
            + f". {escape(kept_line(everything))}<b>{escape(summary_line(claims))}</b>.</p>",
            '<p id="filter">Show claims that: ' + "".join(
                f'<label><input type="checkbox" value="{css}" checked> {escape(text)}</label>' for css, text in FILTERS)
            + "</p>", *toc]
    for chapter, entries in by_chapter.items():
        chapter_claims = [c for e in entries for c in e.claims]
        body.append(f'<h2 id="chapter-{chapter}">Chapter {chapter}: {escape(CHAPTERS[chapter])}</h2>')
        body.append(f"<p><b>{escape(summary_line(chapter_claims))}</b> over {len(entries)} presets.</p>")
        for e in entries:
            body += _preset(e, page_dir)
    return ("<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8><title>leedl: the book, measured</title>"
            f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + f"\n<script>{SCRIPT}</script>\n</body></html>\n")
