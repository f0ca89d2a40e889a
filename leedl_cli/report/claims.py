"""The claims language of `leedl report` and its verdicts: what an experiment says the book claims, checked
against the runs.

An experiment's `report.book` lists the book's claims, one row each::

    book:
      - claim: "small batch generalises better"   # the book's statement, in words (printed)
        metric: test/acc                           # what is measured: a metric, a results field or a dotted path
        where: {task.data.batch_size: 256}         # which runs (their overrides / config choices); {} or absent = all
        by: task.data.batch_size                   # order and trend checks: the parameter whose values are the groups
                                                   #   (default: the report's x)
        book: "98.03 ± 0.07 %"                     # the book's own words or number (printed beside the measurement)
        check: "256 > 6000"                        # what the report verifies (absent: `book` itself, if it parses)

A `check` is one of (V, T, x are numbers, 1e-3 and 0.5 both fine; A, B are values of `by`):

    value      `V ± T` (or `V +- T`)   mean within T of V;  a bare `V` means V ± 1e-6·max(1, |V|)
    bound      `< x`, `<= x`, `> x`, `>= x`
    order      `A > B`, `A < B`         group A (runs with by=A) above / below group B
               `A > k * B`, `A > B - d`, `A < k * B + d`   ... than group B scaled by k > 0 and/or shifted by d
                                        (NAT at least 3 times as fast: `nat > 3 * ar`; within 6 BLEU: `nat > ar - 6`)
               `better than B`, `worse than B`   the group chosen by `where` above / below group B
               `best`, `worst` (= `highest`, `lowest`)   the `where` group above / below every other group of `by`
    trend      `falls`, `rises`         the means fall / rise as `by` grows (numeric order of its values)
    each       `each <value or bound>`  every run on its own (e.g. `each >= 0.995`: every seed converged)

Other groups in order/trend checks are the runs that match `where` except for `by` (so `where` can fix another
parameter, e.g. `{task: bert_squad}`). Higher is better: for a loss write `lowest` or `A < B`.

Verdicts use the mean m and the std s over seeds of each group (the band m ± s):

    holds          value/bound: the whole band satisfies the check; order: the bands do not overlap and the order is
                   the claimed one; trend: the means move monotonically the claimed way and the first and last
                   bands do not overlap; each: every run satisfies it
    does not hold  value/bound: no point of the band satisfies it; order: the bands do not overlap and the order is
                   reversed (best/worst: another group is clearly above/below); trend: two neighbouring groups clearly
                   (bands apart) move the other way; each: no run satisfies it
    inconclusive   anything between: the bands overlap (within their std), or some runs satisfy `each` and some not
    not measured   no finished run with a finite value of the metric for a group the check needs

The verdict is a column of the printed table, report.md and report_claims.csv, and the report ends with the summary
line "N of M claims hold" (M counts every row with a check, also those not measured).
"""
from __future__ import annotations

import re
from typing import Any

from leedl_cli.errors import LeedlError
from leedl_cli.report.runs import fmt, matches, mean_std, metric, run_value, same

HOLDS, FAILS, INCONCLUSIVE, NOT_MEASURED = "holds", "does not hold", "inconclusive", "not measured"
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
CHECK_FORMS = ("`V ± T`, `V`, `< x`, `<= x`, `> x`, `>= x`, `A > B`, `A < B`, `A > k * B`, `A > B - d`, "
               "`better than B`, `worse than B`, "
               "`best`, `worst`, `highest`, `lowest`, `falls`, `rises`, `each <value or bound>`")


def parse_check(text: Any) -> dict | None:
    """A check string -> {"kind": value|bound|order|extreme|trend, ...}; None if it is none of the forms."""
    if text is None:
        return None
    t = " ".join(str(text).strip().split())
    each = False
    if t.lower().startswith("each "):
        each, t = True, t[5:].strip()
    low = t.lower()
    m = re.fullmatch(rf"({_NUM})\s*(?:±|\+-|\+/-)\s*({_NUM})", t)
    if m:
        return {"kind": "value", "value": float(m[1]), "tol": abs(float(m[2])), "each": each}
    if re.fullmatch(_NUM, t):
        v = float(t)
        return {"kind": "value", "value": v, "tol": 1e-6 * max(1.0, abs(v)), "each": each}
    m = re.fullmatch(rf"(<=|>=|<|>|≤|≥)\s*({_NUM})", t)
    if m:
        op = {"≤": "<=", "≥": ">="}.get(m[1], m[1])
        return {"kind": "bound", "op": op, "x": float(m[2]), "each": each}
    if each:
        return None    # `each` applies to a value or a bound only
    if low in ("best", "highest", "worst", "lowest"):
        return {"kind": "extreme", "high": low in ("best", "highest")}
    if low in ("falls", "rises"):
        return {"kind": "trend", "up": low == "rises"}
    m = re.fullmatch(r"(better|worse) than (\S+)", t, flags=re.IGNORECASE)
    if m:
        return {"kind": "order", "a": None, "op": ">" if m[1].lower() == "better" else "<", "b": m[2]}
    m = re.fullmatch(rf"(\S+)\s*(>|<)\s*(?:({_NUM})\s*[*x×]\s*)?(\S+?)(?:\s+([-+])\s*({_NUM}))?", t)
    if m:
        scale = float(m[3]) if m[3] else 1.0
        if scale <= 0:
            return None
        shift = (float(m[6]) if m[5] == "+" else -float(m[6])) if m[5] else 0.0
        return {"kind": "order", "a": m[1], "op": m[2], "b": m[4], "scale": scale, "shift": shift}
    return None


def claim_check(claim: dict) -> dict | None:
    """The parsed check of a book row: its `check`, else its `book` text if that is a check. A `check` that does
    not parse is an error (naming the claim, the text and the accepted forms)."""
    if claim.get("check") is not None:
        parsed = parse_check(claim["check"])
        if parsed is None:
            raise LeedlError(f"report.book: check={claim['check']!r} of claim {claim.get('claim', '')!r} is not a "
                             f"check; accepted: {CHECK_FORMS}")
        return parsed
    return parse_check(claim.get("book"))


def _values(runs: list[dict], metric_name: str) -> list[float]:
    return [v for v in (metric(r, metric_name) for r in runs if r.get("status") == "ok") if v is not None]


def _band(values: list[float]) -> tuple[float, float, float] | None:
    mean, std = mean_std(values)
    return None if mean is None else (mean, mean - std, mean + std)


def _band_verdict(band: tuple[float, float, float], ok_low: float, ok_high: float) -> str:
    """The band [lo, hi] against the interval [ok_low, ok_high] that satisfies the check."""
    _, lo, hi = band
    if ok_low <= lo and hi <= ok_high:
        return HOLDS
    if hi < ok_low or lo > ok_high:
        return FAILS
    return INCONCLUSIVE


def _satisfies(value: float, check: dict) -> bool:
    if check["kind"] == "value":
        return abs(value - check["value"]) <= check["tol"]
    x = check["x"]
    return {"<": value < x, "<=": value <= x, ">": value > x, ">=": value >= x}[check["op"]]


def _single_verdict(values: list[float], check: dict) -> str:
    if not values:
        return NOT_MEASURED
    if check["each"]:
        hits = sum(_satisfies(v, check) for v in values)
        return HOLDS if hits == len(values) else FAILS if hits == 0 else INCONCLUSIVE
    band = _band(values)
    if check["kind"] == "value":
        return _band_verdict(band, check["value"] - check["tol"], check["value"] + check["tol"])
    _, lo, hi = band
    if _satisfies(lo, check) and _satisfies(hi, check):
        return HOLDS
    if not _satisfies(lo, check) and not _satisfies(hi, check):
        return FAILS
    return INCONCLUSIVE


def _above(a: tuple, b: tuple) -> bool:
    """Band a lies wholly above band b."""
    return a[1] > b[2]


def _groups_by(runs: list[dict], by: str, where: dict, metric_name: str) -> dict[str, list[float]]:
    """Runs that match `where` (except for `by`), grouped by their value of `by` -> metric values."""
    rest = {k: v for k, v in (where or {}).items() if k != by}
    groups: dict[str, list[float]] = {}
    for r in runs:
        if r.get("status") != "ok" or not matches(r, rest) or run_value(r, by) is None:
            continue
        value = metric(r, metric_name)
        label = str(run_value(r, by))
        groups.setdefault(label, [])
        if value is not None:
            groups[label].append(value)
    return groups


def _pick(groups: dict[str, list[float]], label: Any) -> tuple[str | None, list[float]]:
    for key, values in groups.items():
        if same(key, label):
            return key, values
    return None, []


def _scaled(scale: float, shift: float, text: str) -> str:
    """How group B enters an order check: `3 × (B: ...) - 6`, or B's text alone."""
    if scale == 1.0 and shift == 0.0:
        return text
    out = f"{scale:g} × ({text})" if scale != 1.0 else f"({text})"
    return out + (f" {'+' if shift > 0 else '-'} {abs(shift):g}" if shift else "")


def _show(label: str, values: list[float]) -> str:
    mean, std = mean_std(values)
    return f"{label}: {fmt(mean, std, len(values))}"


def verdict(runs: list[dict], claim: dict, default_by: str | None = None) -> tuple[str, str]:
    """(verdict, what was compared) for one book row; ("", "") when the row has no check."""
    check = claim_check(claim)
    if check is None:
        return "", ""
    name, where = claim["metric"], claim.get("where") or {}
    if check["kind"] in ("value", "bound"):
        chosen = [r for r in runs if matches(r, where)]
        return _single_verdict(_values(chosen, name), check), ""
    by = claim.get("by") or default_by
    if not by:
        raise LeedlError(f"report.book: claim {claim.get('claim', '')!r} checks {claim.get('check', claim.get('book'))!r}"
                         " between groups but names no `by` parameter (and the report has no `x`)")
    groups = _groups_by(runs, by, where, name)
    bands = {k: _band(v) for k, v in groups.items()}
    if check["kind"] == "trend":
        def order(k):
            try:
                return (0, float(k), "")
            except ValueError:
                return (1, 0.0, k)
        keys = sorted((k for k in bands if bands[k] is not None), key=order)
        if len(keys) < 2 or len(keys) < len(groups):
            return NOT_MEASURED, ""
        seq = [bands[k] if check["up"] else (-bands[k][0], -bands[k][2], -bands[k][1]) for k in keys]
        shown = " → ".join(_show(k, groups[k]) for k in keys)
        if any(_above(seq[i], seq[i + 1]) for i in range(len(seq) - 1)):
            return FAILS, shown
        monotone = all(seq[i][0] < seq[i + 1][0] for i in range(len(seq) - 1))
        return (HOLDS if monotone and _above(seq[-1], seq[0]) else INCONCLUSIVE), shown
    if check["kind"] == "order":
        a_label = check["a"]
        if a_label is None:
            if by not in where:
                raise LeedlError(f"report.book: claim {claim.get('claim', '')!r}: {claim.get('check', claim.get('book'))!r}"
                                 f" needs `where` to name the group ({by}: ...)")
            a_label = where[by]
        (ka, va), (kb, vb) = _pick(groups, a_label), _pick(groups, check["b"])
        if not va or not vb:
            return NOT_MEASURED, ""
        scale, shift = check.get("scale", 1.0), check.get("shift", 0.0)
        a, b = _band(va), tuple(scale * x + shift for x in _band(vb))
        if check["op"] == "<":
            a, b = b, a
        shown = f"{_show(ka, va)} vs {_scaled(scale, shift, _show(kb, vb))}"
        return (HOLDS if _above(a, b) else FAILS if _above(b, a) else INCONCLUSIVE), shown
    # extreme: best / worst
    if by not in where:
        raise LeedlError(f"report.book: claim {claim.get('claim', '')!r}: "
                         f"{claim.get('check', claim.get('book'))!r} needs `where` to name the group ({by}: ...)")
    key, values = _pick(groups, where[by])
    others = {k: bands[k] for k in groups if k != key}
    if not values or not others or any(b is None for b in others.values()):
        return NOT_MEASURED, ""
    sign = 1 if check["high"] else -1
    me = tuple(sign * x for x in _band(values))
    me = (me[0], min(me[1:]), max(me[1:]))
    flipped = {k: (sign * b[0], min(sign * b[1], sign * b[2]), max(sign * b[1], sign * b[2])) for k, b in others.items()}
    runner_up = max(flipped, key=lambda k: flipped[k][0])
    shown = f"{_show(key, values)}; next: {_show(runner_up, groups[runner_up])}"
    if all(_above(me, b) for b in flipped.values()):
        return HOLDS, shown
    if any(_above(b, me) for b in flipped.values()):
        return FAILS, shown
    return INCONCLUSIVE, shown


def book_rows(runs: list[dict], cfg: dict) -> list[dict]:
    """One row per book claim: the claim, the book's words, the check, what was measured and the verdict."""
    rows = []
    for claim in cfg.get("book") or []:
        check = claim_check(claim)
        result, compared = verdict(runs, claim, cfg.get("x"))
        if compared:    # order / extreme / trend: the groups compared
            measured = compared
        else:
            chosen = [r for r in runs if r.get("status") == "ok" and matches(r, claim.get("where"))]
            values = _values(chosen, claim["metric"])
            measured = fmt(*mean_std(values), len(values))
            if check and check.get("each") and values:
                hits = sum(_satisfies(v, check) for v in values)
                measured += f"; {hits} of {len(values)} runs satisfy it"
        rows.append({"claim": claim.get("claim", ""), "metric": claim["metric"], "where": claim.get("where") or {},
                     "book": claim.get("book", ""),
                     "check": "" if check is None else str(claim.get("check", claim.get("book"))),
                     "measured": measured, "verdict": result, "by": claim.get("by") or cfg.get("x")})
    return rows


def summary_line(claims: list[dict]) -> str:
    checked = [c for c in claims if c["verdict"]]
    counts = {v: sum(c["verdict"] == v for c in checked) for v in (FAILS, INCONCLUSIVE, NOT_MEASURED)}
    rest = ", ".join(f"{n} {'do not hold' if v == FAILS and n > 1 else v}" for v, n in counts.items() if n)
    return f"{sum(c['verdict'] == HOLDS for c in checked)} of {len(checked)} claims hold" + (f" ({rest})" if rest else "")


