"""Verdicts of `leedl report` on hand-made results.json files (no training): each check form and each verdict."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from leedl_cli import report
from leedl_cli.errors import LeedlError
from leedl_cli.report import FAILS, HOLDS, INCONCLUSIVE, NOT_MEASURED


def make_sweep(root: Path, groups: dict[str, list[float]], key: str = "opt", metric: str = "test/acc",
               book: list[dict] | None = None, x: str | None = None, status: dict | None = None) -> Path:
    """One run directory per value: overrides `key=<group>` and `seed=<i>`, metric = the value."""
    job = 0
    for label, values in groups.items():
        for seed, value in enumerate(values):
            d = root / str(job)
            d.mkdir(parents=True)
            run = {"status": (status or {}).get((label, seed), "ok"), "seed": seed,
                   "overrides": [f"{key}={label}", f"seed={seed}"], "metrics": {metric: value},
                   "report": {"metrics": [metric], "book": book or [], **({"x": x} if x else {})}}
            (d / "results.json").write_text(json.dumps(run))
            job += 1
    return root


def verdicts(tmp_path, groups, *claims, **kw) -> list[str]:
    runs = report.load_runs(make_sweep(tmp_path / "sweep", groups, book=list(claims), **kw))
    return [row["verdict"] for row in report.book_rows(runs, report.report_config(runs))]


def claim(check, where=None, **kw):
    return {"claim": "c", "metric": "test/acc", "where": where or {}, "book": "words", "check": check, **kw}


@pytest.mark.parametrize("text, expected", [
    ("0.98 ± 0.003", {"kind": "value", "value": 0.98, "tol": 0.003, "each": False}),
    ("0.98 +- 3e-3", {"kind": "value", "value": 0.98, "tol": 0.003, "each": False}),
    ("< 1e-3", {"kind": "bound", "op": "<", "x": 0.001, "each": False}),
    ("each >= 0.995", {"kind": "bound", "op": ">=", "x": 0.995, "each": True}),
    ("best", {"kind": "extreme", "high": True}),
    ("lowest", {"kind": "extreme", "high": False}),
    ("better than v2", {"kind": "order", "a": None, "op": ">", "b": "v2"}),
    ("256 > 6000", {"kind": "order", "a": "256", "op": ">", "b": "6000", "scale": 1.0, "shift": 0.0}),
    ("nat > 3 * ar", {"kind": "order", "a": "nat", "op": ">", "b": "ar", "scale": 3.0, "shift": 0.0}),
    ("nat > ar - 6", {"kind": "order", "a": "nat", "op": ">", "b": "ar", "scale": 1.0, "shift": -6.0}),
    ("a < 0.5x b + 1", {"kind": "order", "a": "a", "op": "<", "b": "b", "scale": 0.5, "shift": 1.0}),
    ("a > 0 * b", None),
    ("falls", {"kind": "trend", "up": False}),
    ("0.5-0.6", None), ("keeps changing sign", None), ("each best", None),
])
def test_parse_check(text, expected):
    assert report.parse_check(text) == expected


def test_bare_number_is_an_exact_value_and_a_bad_check_is_a_one_line_error(tmp_path):
    assert report.parse_check("-2")["tol"] == pytest.approx(2e-6)
    with pytest.raises(LeedlError, match="check='about right'.*accepted"):
        report.claim_check(claim("about right"))
    # a book text that is no check leaves the row unchecked (no verdict), it does not fail the report
    assert report.claim_check({"claim": "c", "metric": "m", "book": "far below pretrained"}) is None


def test_value_verdicts(tmp_path):
    got = verdicts(tmp_path, {"a": [0.980, 0.981, 0.979], "b": [0.95, 0.96, 0.97], "c": [0.90, 0.91]},
                   claim("0.980 ± 0.003", {"opt": "a"}),     # band 0.979..0.981 inside 0.977..0.983
                   claim("0.980 ± 0.003", {"opt": "c"}),     # band 0.898..0.912: far outside
                   claim("0.967 ± 0.003", {"opt": "b"}),     # mean 0.96 outside 0.964..0.970, band 0.95..0.97 reaches it
                   claim("0.98 ± 0.01", {"opt": "missing"}))
    assert got == [HOLDS, FAILS, INCONCLUSIVE, NOT_MEASURED]


def test_bound_and_each_verdicts(tmp_path):
    got = verdicts(tmp_path, {"a": [0.9951, 0.9952, 0.9950, 0.9960], "b": [0.99, 0.996], "c": [0.5]},
                   claim("> 0.9", {"opt": "a"}), claim("< 0.9", {"opt": "a"}),
                   claim(">= 0.995", {"opt": "a"}),          # mean - std dips below 0.995: the band straddles it
                   claim("each >= 0.995", {"opt": "a"}),     # ... but every run is above it
                   claim("each >= 0.995", {"opt": "b"}), claim("each >= 0.995", {"opt": "c"}),
                   claim("<= 0.5", {"opt": "c"}))
    assert got == [HOLDS, FAILS, INCONCLUSIVE, HOLDS, INCONCLUSIVE, FAILS, HOLDS]


def test_order_verdicts_use_the_std_over_seeds(tmp_path):
    groups = {"v2": [362.0, 200.0, 520.0], "v3": [498.0, 500.0, 496.0], "v0": [9.0, 9.5, 9.2], "v1": [470.0, 480.0]}
    got = verdicts(tmp_path, groups,
                   claim("v3 > v0"), claim("v0 > v1"),
                   claim("better than v2", {"opt": "v3"}),   # 498 ± 2 vs 361 ± 160: the bands overlap
                   claim("worse than v1", {"opt": "v0"}),
                   claim("v1 < v3"),                          # 475 ± 7 below 498 ± 2
                   claim("v3 > v9"), x="opt")
    assert got == [HOLDS, FAILS, INCONCLUSIVE, HOLDS, HOLDS, NOT_MEASURED]


def test_scaled_and_shifted_order_verdicts(tmp_path):
    groups = {"nat": [300.0, 310.0, 305.0], "ar": [90.0, 92.0, 91.0], "bleu_nat": [31.0, 31.5], "bleu_ar": [36.0, 36.4]}
    got = verdicts(tmp_path, groups,
                   claim("nat > 3 * ar"),          # 305 ± 5 above 3 × (91 ± 1) = 273 ± 3
                   claim("nat > 4 * ar"),          # below 364 ± 4
                   claim("bleu_nat > bleu_ar - 6"),  # 31.25 above 30.2 ± 0.3
                   claim("bleu_nat > bleu_ar - 5"),  # 31.25 ± 0.35 vs 31.2 ± 0.3: the bands overlap
                   claim("ar < 0.5 * nat"), x="opt")
    assert got == [HOLDS, FAILS, HOLDS, INCONCLUSIVE, HOLDS]
    runs = report.load_runs(tmp_path / "sweep")
    rows = report.book_rows(runs, report.report_config(runs))
    assert "vs 3 × (ar: " in rows[0]["measured"] and rows[2]["measured"].endswith(") - 6")


def test_best_worst_verdicts(tmp_path):
    groups = {"v0": [9.0, 9.5], "v3": [498.0, 500.0], "v1": [300.0, 310.0]}
    got = verdicts(tmp_path, groups, claim("worst", {"opt": "v0"}, by="opt"), claim("best", {"opt": "v3"}, by="opt"),
                   claim("best", {"opt": "v1"}, by="opt"),      # v3 is clearly above it
                   claim("lowest", {"opt": "v1"}, by="opt"))    # v0 is clearly below it
    assert got == [HOLDS, HOLDS, FAILS, FAILS]
    groups["v4"] = [300.0, 520.0, 480.0]                        # 433 ± 117: reaches above v3, not clearly above it
    got = verdicts(tmp_path / "v4", groups, claim("best", {"opt": "v4"}, by="opt"),
                   claim("best", {"opt": "v3"}, by="opt"), claim("worst", {"opt": "v0"}, by="opt"))
    assert got == [INCONCLUSIVE, INCONCLUSIVE, HOLDS]


def test_trend_verdicts(tmp_path):
    falling = {"64": [0.97, 0.975], "256": [0.965, 0.966], "6000": [0.89, 0.891]}
    got = verdicts(tmp_path, falling, claim("falls"), claim("rises"), claim("6000 < 64"), x="opt")
    assert got == [HOLDS, FAILS, HOLDS]
    wobbly = {"50": [0.70, 0.76], "300": [0.72, 0.70], "1000": [0.74, 0.75]}   # down, then up, within the std
    assert verdicts(tmp_path / "w", wobbly, claim("rises"), x="opt") == [INCONCLUSIVE]
    half = {"1": [1.0], "2": []}
    assert verdicts(tmp_path / "h", half, claim("rises"), x="opt") == [NOT_MEASURED]


def test_failed_runs_do_not_count_and_where_can_fix_another_parameter(tmp_path):
    root = tmp_path / "s"
    for i, (task, pre, f1) in enumerate([("qa", "true", 40.0), ("qa", "true", 42.0), ("qa", "false", 7.0),
                                         ("qa", "false", 8.0), ("sst", "true", 0.8), ("sst", "false", 0.9)]):
        d = root / str(i)
        d.mkdir(parents=True)
        (d / "results.json").write_text(json.dumps({
            "status": "ok", "seed": i, "overrides": [f"task={task}", f"model.pretrained={pre}", f"seed={i}"],
            "metrics": {"test/f1": f1}, "report": {"book": [
                {"claim": "qa", "metric": "test/f1", "where": {"task": "qa"}, "by": "model.pretrained",
                 "check": "true > false", "book": "pretrained >> rand"},
                {"claim": "sst", "metric": "test/f1", "where": {"task": "sst"}, "by": "model.pretrained",
                 "check": "true > false", "book": "above rand"}]}}))
    runs = report.load_runs(root)
    assert [c["verdict"] for c in report.book_rows(runs, report.report_config(runs))] == [HOLDS, FAILS]
    # a failed run's number is not used: only the failed one had the value that satisfies the check
    failed = make_sweep(tmp_path / "f", {"a": [0.5, 0.99]}, book=[claim("> 0.9", {"opt": "a"})],
                        status={("a", 1): "failed"})
    runs = report.load_runs(failed)
    assert [c["verdict"] for c in report.book_rows(runs, report.report_config(runs))] == [FAILS]


def test_summary_line_counts_every_checked_row():
    rows = [{"verdict": v} for v in (HOLDS, HOLDS, FAILS, INCONCLUSIVE, NOT_MEASURED, "")]
    assert report.summary_line(rows) == "2 of 5 claims hold (1 does not hold, 1 inconclusive, 1 not measured)"


def test_leedl_report_prints_verdicts_and_summary_in_table_md_and_csv(tmp_path):
    sweep = make_sweep(tmp_path / "sweep", {"256": [0.980, 0.981], "6000": [0.978, 0.977]}, key="bs",
                       book=[claim("256 > 6000", by="bs"), claim("0.9803 ± 0.002", {"bs": "256"}),
                             claim("> 0.99", {"bs": "6000"})])
    out = subprocess.run([sys.executable, "-m", "leedl_cli.cli", "report", str(sweep), "--no-plots"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "2 of 3 claims hold (1 does not hold)" in out.stdout and "verdict" in out.stdout
    md = (sweep / "report.md").read_text()
    assert "| verdict |" in md and "**2 of 3 claims hold (1 does not hold)**" in md
    assert md.count("**holds**") == 2 and md.count("**does not hold**") == 1
    rows = list(csv.reader((sweep / "report_claims.csv").read_text().splitlines()))
    assert rows[0] == ["claim", "where", "metric", "book", "check", "measured", "verdict"]
    assert [r[-1] for r in rows[1:4]] == [HOLDS, HOLDS, FAILS]
    assert rows[4][:2] == ["summary", "2 of 3 claims hold (1 does not hold)"] and len(rows) == 5
    groups = list(csv.DictReader((sweep / "report.csv").read_text().splitlines()))
    assert [(g["group"], g["runs"], g["ok"], g["test/acc n"]) for g in groups] == [("bs=256", "2", "2", "2"),
                                                                                    ("bs=6000", "2", "2", "2")]


def test_a_bad_check_in_a_preset_is_a_one_line_error(tmp_path):
    sweep = make_sweep(tmp_path / "sweep", {"a": [1.0]}, book=[claim("roughly 1", {"opt": "a"})])
    out = subprocess.run([sys.executable, "-m", "leedl_cli.cli", "report", str(sweep), "--no-plots"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "check='roughly 1'" in out.stderr and "Traceback" not in out.stderr


def test_every_preset_book_row_has_a_check_that_parses():
    """What the report verifies for each preset: every book row states a checkable claim."""
    import yaml

    for path in sorted(Path(__file__).parents[1].joinpath("conf", "experiment").glob("*.yaml")):
        cfg = yaml.safe_load(path.read_text()) or {}
        for row in (cfg.get("report") or {}).get("book") or []:
            check = report.claim_check(row)
            assert check is not None, f"{path.name}: {row.get('claim')!r} has no check"
            if check["kind"] in ("order", "extreme", "trend"):
                assert row.get("by") or cfg["report"].get("x"), f"{path.name}: {row.get('claim')!r} needs `by`"


def test_report_with_verdicts_imports_no_torch(tmp_path):
    sweep = make_sweep(tmp_path / "sweep", {"a": [1.0, 1.1], "b": [0.5, 0.6]}, book=[claim("a > b", by="opt")])
    code = ("import sys; from leedl_cli.report import report_main; "
            f"rc = report_main([{str(sweep)!r}, '--no-plots']); "
            "print(rc, 'torch' in sys.modules, 'pytorch_lightning' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip().splitlines()[-1] == "0 False False", out.stderr
