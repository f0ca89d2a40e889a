"""`leedl book`: the whole book on one page. Imports no torch or Lightning.

  presets.py  the presets of conf/experiment/ as data: section of the book, claims, sweep size, tasks
  records.py  run records matched to presets by the experiment each recorded, per budget (full or smoke)
  plan.py     `leedl book plan`: one row per preset, measured time or an estimate, the command
  run.py      `leedl book run`: the presets not yet measured, resumable, K jobs at a time
  report.py   `leedl book report`: index.md, chapter-N.md, claims.json and the plots under docs/results/
  html.py     book.html: the same on one self-contained page
  cli.py      the command's arguments
"""
from __future__ import annotations

from leedl_cli.book.cli import book_main

__all__ = ["book_main"]
