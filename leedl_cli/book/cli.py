"""The `leedl book` command: plan, run and report the whole book. Exit status 2 for what the user can fix."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from leedl_cli.errors import LeedlError

USAGE = """usage: leedl book plan [--chapter N] [--preset NAME ...] [--dir DIR] [--budget full|smoke] [--claims]
       leedl book run [--chapter N] [--preset NAME ...] [--budget full|smoke] [--jobs K] [--threads T]
                      [--dir DIR] [--all] [-- OVERRIDE ...]
       leedl book report [DIR] [--out OUT] [--budget full|smoke] [--no-plots] [--link-plots] [--fresh]

  plan    one row per preset of conf/experiment/: its section of the book, claims, runs, time (measured, else an
          estimate), whether it has been measured, and the command that runs it
  run     run the presets not yet measured (all of them with --all), K jobs at a time: a preset takes the free
          slots its sweep can use (Hydra's joblib launcher), the next starts when one frees (at --budget smoke one
          slot a preset, its sweep in one process; a preset whose runs stop at trainer.max_time takes every slot,
          one run at a time with the threads of all); each into DIR/<preset> (default DIR: outputs/book, outputs/book-smoke for --budget smoke); resumable:
          run it again to continue. --budget smoke: debug=smoke and one seed, the whole book in minutes
  report  one Markdown page per chapter, an index, claims.json and book.html (every plot embedded; --link-plots:
          linked to the plots/ files beside it, as docs/results keeps it) from the runs under DIR (default:
          outputs/), written to OUT (default: docs/results); a preset with no runs under DIR keeps what
          OUT/claims.json recorded of it (--fresh: only the runs under DIR)"""


def _error(message: str) -> int:
    print(f"leedl book: error: {message}", file=sys.stderr)
    return 2


def _output_root() -> Path:
    return Path(os.environ.get("LEEDL_OUTPUT_DIR", "outputs"))


def _parser(action: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"leedl book {action}", add_help=False)
    parser.add_argument("-h", "--help", action="store_true")
    parser.add_argument("--budget", choices=["full", "smoke"], default="full")
    if action in ("plan", "run"):
        parser.add_argument("--chapter", type=int)
        parser.add_argument("--preset", action="append")
        parser.add_argument("--dir")
    if action == "plan":
        parser.add_argument("--claims", action="store_true")
    if action == "run":
        parser.add_argument("--jobs", type=int, default=1)
        parser.add_argument("--threads", type=int)
        parser.add_argument("--all", action="store_true")
    if action == "report":
        parser.add_argument("dir", nargs="?")
        parser.add_argument("--out", default="docs/results")
        parser.add_argument("--no-plots", action="store_true")
        parser.add_argument("--link-plots", action="store_true")
        parser.add_argument("--fresh", action="store_true")
    return parser


def book_main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0 if argv else 2
    action, rest = argv[0], argv[1:]
    if action not in ("plan", "run", "report"):
        return _error(f"unknown action {action!r}; valid actions: plan, run, report (leedl book --help)")
    extra: list[str] = []
    if "--" in rest:
        i = rest.index("--")
        rest, extra = rest[:i], rest[i + 1:]
    parser = _parser(action)
    try:
        opts = parser.parse_args(rest)
    except SystemExit:
        return _error(f"bad arguments: {' '.join(rest)}\n{USAGE}")
    if opts.help:
        print(USAGE)
        return 0
    bad = [e for e in extra if "=" not in e]
    if bad or (extra and action != "run"):
        return _error(f"after --: Hydra overrides key=value for `leedl book run` only (got {' '.join(bad or extra)})")
    try:
        return {"plan": cmd_plan, "run": cmd_run, "report": cmd_report}[action](opts, extra)
    except LeedlError as err:
        return _error(str(err))


def cmd_plan(opts, extra) -> int:
    from leedl_cli.book.plan import default_roots, plan_lines, published, row, totals_line
    from leedl_cli.book.presets import read_presets
    from leedl_cli.book.records import by_preset, load

    presets = read_presets(chapter=opts.chapter, names=opts.preset)
    measured = by_preset(load(default_roots([Path(opts.dir)] if opts.dir else [])))
    elsewhere = published()
    rows = [row(p, measured, opts.budget, elsewhere) for p in presets]
    for line in plan_lines(rows, opts.claims):
        print(line)
    print()
    print(totals_line(rows))
    return 0


def cmd_run(opts, extra) -> int:
    from leedl_cli.book.presets import read_presets
    from leedl_cli.book.run import Options, run_book

    if opts.jobs < 1:
        return _error(f"--jobs {opts.jobs}: give 1 or more jobs at a time")
    if opts.threads is not None and opts.threads < 1:
        return _error(f"--threads {opts.threads}: give 1 or more threads a run")
    presets = read_presets(chapter=opts.chapter, names=opts.preset)
    out = Path(opts.dir) if opts.dir else _output_root() / ("book" if opts.budget == "full" else "book-smoke")
    threads = opts.threads or max(1, (os.cpu_count() or 1) // opts.jobs)
    state = run_book(presets, Options(out=out.absolute(), budget=opts.budget, jobs=opts.jobs, threads=threads,
                                      again=opts.all, extra=extra), lambda line: print(line, flush=True))
    failed = [name for name, s in state.items() if s.get("status") == "failed" and name in {p.name for p in presets}]
    if failed:
        print(f"leedl book run: {len(failed)} preset(s) failed: {', '.join(failed)} (their logs: {out}/logs/); "
              f"run the same command again to retry them", file=sys.stderr)
    return 1 if failed else 0


def cmd_report(opts, extra) -> int:
    from leedl_cli.book.presets import read_presets
    from leedl_cli.book.records import by_preset, load
    from leedl_cli.book.report import write_book

    source = Path(opts.dir) if opts.dir else _output_root()
    if opts.dir and not source.exists():
        return _error(f"{source} does not exist (give the folder that holds the runs, e.g. outputs/book)")
    measured = by_preset(load([source]))
    written = write_book(read_presets(), measured, Path(opts.out), str(source), opts.budget, not opts.no_plots,
                         embed=not opts.link_plots, keep_earlier=not opts.fresh)
    index = written[0]
    print(f"wrote {index} and {len(written) - 1} more files in {index.parent} "
          f"({sum(1 for k in measured if k[1] == opts.budget)} presets with runs)")
    return 0
