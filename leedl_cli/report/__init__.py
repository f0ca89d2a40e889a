"""`leedl report`: aggregate results.json files into tables (mean ± std over seeds, per task), report.md/.csv,
plots and the verdicts of the book's claims.

Reads only results.json and metrics.csv, so any sweep, launcher or machine can be aggregated. Imports no torch.
Runs are grouped by task, then by their overrides other than the seed; runs that did not end ok are counted and
listed. What an experiment wants drawn and compared comes from its `report:` config (copied into results.json).

  runs.py     reading results.json files: run records, their status now, groups, metrics
  claims.py   the claims language (`check: "256 > 6000"`, ...) and its verdicts (the grammar is its docstring)
  plots.py    metric-vs-parameter plots, training curves, plot plugins (`report.plots`)
  render.py   the terminal table, report.md, report.csv, report_claims.csv
  cli.py      the `leedl report` command
"""
from __future__ import annotations

from leedl_cli.report.claims import (
                                     FAILS,
                                     HOLDS,
                                     INCONCLUSIVE,
                                     NOT_MEASURED,
                                     book_rows,
                                     claim_check,
                                     parse_check,
                                     summary_line,
                                     verdict,
)
from leedl_cli.report.cli import report_main
from leedl_cli.report.runs import group_label, load_runs, report_config, summarize

__all__ = ["FAILS", "HOLDS", "INCONCLUSIVE", "NOT_MEASURED", "book_rows", "claim_check", "group_label", "load_runs",
           "parse_check", "report_config", "report_main", "summarize", "summary_line", "verdict"]
