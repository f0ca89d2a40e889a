"""`leedl book`: the plan lists every preset without torch, the report turns run records into pages whose images
and links all resolve, and a smoke book run of one preset records what it did (slow tier)."""
from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from leedl_cli.book.cli import book_main
from leedl_cli.book.presets import PresetError, read_presets, section_of
from leedl_cli.book.records import FULL, by_preset, load
from leedl_cli.book.run import Options, command, run_book
from leedl_cli.paths import conf_dir

PRESETS = sorted(p.stem for p in (conf_dir() / "experiment").glob("*.yaml"))
HEAVY = ("torch", "pytorch_lightning", "lightning", "transformers")


def test_plan_lists_every_preset_without_importing_torch(monkeypatch, capsys):
    for name in HEAVY:   # an `import torch` anywhere in the plan's path raises ImportError now
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setenv("LEEDL_OUTPUT_DIR", "/nonexistent-leedl-outputs")
    assert book_main(["plan"]) == 0
    out = capsys.readouterr().out
    listed = re.findall(r"^  \d[\d.]*\s+(\S+)\s", out, flags=re.MULTILINE)
    assert sorted(listed) == PRESETS
    assert out.count("not measured") + out.count("in docs/results") >= len(PRESETS)
    assert f"{len(PRESETS)} presets" in out
    for name in PRESETS:
        assert f"leedl run experiment={name}" in out


def test_plan_takes_the_time_of_a_preset_measured_only_in_the_published_results(tmp_path):
    from leedl_cli.book.plan import published, row, totals_line

    runs, out = tmp_path / "runs", tmp_path / "docs"
    _fake_runs(runs)
    assert book_main(["report", str(runs), "--out", str(out), "--no-plots"]) == 0
    elsewhere = published(out / "claims.json")
    assert set(elsewhere) == {"momentum", "batch_size_gap"} and elsewhere["momentum"]["total_s"] == 10.0
    [momentum, pooling] = read_presets(names=["momentum", "pooling"])
    r = row(momentum, {}, elsewhere=elsewhere)   # no records here
    assert r.published and r.state() == "in docs/results" and not r.done
    assert r.seconds == 10.0 / 2 * momentum.runs and r.source == "measured 2026-11-30 (docs/results)"
    here = row(momentum, by_preset(load([runs])), elsewhere=elsewhere)   # records here come first
    assert not here.published and here.state() == "measured" and here.source == "measured 2026-11-30"
    assert row(pooling, {}, elsewhere=elsewhere).state() == "not measured"
    assert "0 measured here (1 more in docs/results); the 2 not yet measured here take" in totals_line([r, row(pooling, {}, elsewhere=elsewhere)])
    assert published(tmp_path / "absent.json") == {}


def test_every_preset_has_a_section_and_a_sweep_size():
    presets = {p.name: p for p in read_presets()}
    assert sorted(presets) == PRESETS
    assert presets["batch_size_gap"].runs == 9 and presets["batch_size_gap"].section == "1.2.1"
    assert presets["attention_vs_rnn_speed"].section == "3.7" and presets["attention_vs_rnn_speed"].runs == 14
    assert presets["hpo_digits"].runs == 20 and presets["hpo_digits"].trials == 20
    assert presets["batch_size_gap_converged_fashion"].runs == 10   # read on top of the preset it includes
    assert presets["batch_size_gap_converged_fashion"].tasks == ["fashion_mnist"]
    assert presets["mc_vs_td"].runs == 1 and presets["mc_vs_td"].section == "7.4.5"
    assert presets["decoding_strategies"].missing == ["task.module.weights_from"]
    assert section_of("x", "x — no chapter here", {"section": "4.5.2"}) == "4.5.2"


def _record(run_dir: Path, preset: str, overrides: list[str], metrics: dict, debug: str | None = None, **extra):
    run_dir.mkdir(parents=True)
    choices = {"experiment": preset, "trainer": "cpu", "task": "t", "model": "m", **({"debug": debug} if debug else {})}
    record = {"status": "ok", "task": "t", "choices": choices, "overrides": [*overrides, f"experiment={preset}"],
              "seed": 0, "metrics": metrics, "started": "2026-11-30T10:00:00", "finished": "2026-11-30T10:00:05",
              "timings": {"total_s": 5.0}, "versions": {"python": "3.11", "torch": "2.14.1"}, "host": "h", **extra}
    (run_dir / "results.json").write_text(json.dumps(record))


def _fake_runs(root: Path) -> None:
    _record(root / "momentum/0", "momentum", ["optimizer=sgd"], {}, reached_global_minimum=0.0)
    _record(root / "momentum/1", "momentum", ["optimizer=momentum"], {}, reached_global_minimum=1.0)
    for i, (batch, seed, acc) in enumerate([(64, 0, 0.97), (64, 1, 0.971), (256, 0, 0.965), (256, 1, 0.966),
                                            (6000, 0, 0.90), (6000, 1, 0.91)]):
        _record(root / f"bsg/{i}", "batch_size_gap", [f"task.data.batch_size={batch}", f"seed={seed}"],
                {"test/acc": acc, "train/acc": acc + 0.01})
    _record(root / "smoke/0", "pooling", ["model.pooling=true"], {"test/acc": 0.5}, debug="smoke")
    _record(root / "other/0", "nope", [], {})   # a run of no preset leedl knows: left out
    (root / "broken").mkdir()
    (root / "broken/results.json").write_text("[1, 2]")


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.links, self.images, self.scripts = set(), [], [], 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "a" and "href" in attrs:
            self.links.append(attrs["href"])
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag == "script":
            self.scripts += 1
            assert "src" not in attrs, "the page must not need another file"


def _md_anchors(text: str) -> set[str]:
    return set(re.findall(r'<a id="([^"]+)"></a>', text))


def test_book_report_writes_pages_whose_images_and_links_resolve(tmp_path, capsys):
    runs, out = tmp_path / "runs", tmp_path / "docs"
    _fake_runs(runs)
    out.mkdir()
    gap_claims = read_presets(names=["batch_size_gap"])[0].claims
    failing, holding = gap_claims[2]["claim"], gap_claims[0]["claim"]
    (out / "notes.yaml").write_text(json.dumps({"batch_size_gap": {failing: "the written toy data are too easy",
                                                                   holding: "never shown: this claim holds"}}))
    assert book_main(["report", str(runs), "--out", str(out)]) == 0
    pages = {p.name: p.read_text() for p in out.glob("*.md")}
    assert sorted(pages) == ["chapter-1.md", "chapter-2.md", "chapter-3.md", "chapter-4.md", "chapter-5.md",
                             "chapter-6.md", "chapter-7.md", "index.md"]
    claims = json.loads((out / "claims.json").read_text())
    by = {(c["preset"], c["claim"][:20]): c for c in claims["claims"]}
    momentum = [c for c in claims["claims"] if c["preset"] == "momentum"]
    assert [c["verdict"] for c in momentum] == ["holds", "holds"]
    gap = [c for c in claims["claims"] if c["preset"] == "batch_size_gap"]
    assert [c["verdict"] for c in gap] == ["holds", "holds", "does not hold", "does not hold"]
    assert gap[2]["measured"] == "0.9655 ± 0.0007 (n=2)"
    assert by[("pooling", next(c["claim"] for c in claims["claims"] if c["preset"] == "pooling")[:20])]["verdict"] \
        in ("not measured", None)   # its only run is a smoke run: not a measurement
    n_checked = sum(c["verdict"] is not None for c in claims["claims"])
    assert claims["summary"].startswith(f"4 of {n_checked} claims hold")
    assert f"**4 of {n_checked} claims hold" in pages["index.md"]
    assert "[pooling](chapter-2.md#preset-pooling)" in pages["index.md"]          # listed as not measured
    assert "**Not measured yet.** `leedl book run --preset pooling`" in pages["chapter-2.md"]
    assert "2 of 2 claims hold." in pages["chapter-1.md"] and "on CPU (trainer=cpu" in pages["chapter-1.md"]
    # why a claim does not hold here: from notes.yaml, under the claims, only for claims that do not hold
    assert f"- *{failing}* — does not hold here: the written toy data are too easy" in pages["chapter-1.md"]
    assert "never shown" not in pages["chapter-1.md"]
    assert gap[2]["why"] == "the written toy data are too easy" and gap[0]["why"] is None
    # every Markdown link and image resolves: files exist, anchors exist in their page
    for name, text in pages.items():
        for target in re.findall(r"\]\(([^)]+)\)", text):
            path, _, anchor = target.partition("#")
            page = out / path if path else out / name
            assert page.is_file(), f"{name}: {target}"
            if anchor:
                assert anchor in _md_anchors(page.read_text()), f"{name}: {target}"
            if page.suffix == ".png":
                assert page.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list((out / "plots/momentum").glob("*.png")) and list((out / "plots/batch_size_gap").glob("*.png"))
    # the HTML page: self-contained, every image a PNG data URI, every link an anchor of the page
    page = _Page()
    html = (out / "book.html").read_text()
    page.feed(html)
    assert page.images and len(page.images) == html.count("<img ")
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.partition(",")[2])[:8] == b"\x89PNG\r\n\x1a\n"
    assert page.links and all(link.startswith("#") and link[1:] in page.ids for link in page.links)
    assert {f"chapter-{n}" for n in range(1, 8)} | {f"preset-{n}" for n in PRESETS} <= page.ids
    assert page.scripts == 1 and 'data-verdict="holds"' in html and 'data-verdict="fails"' in html
    assert "does not hold here: the written toy data are too easy" in html
    # --link-plots: the same page with the plots/ files linked instead of embedded (small enough for git)
    assert book_main(["report", str(runs), "--out", str(out), "--link-plots"]) == 0
    linked = _Page()
    linked.feed((out / "book.html").read_text())
    assert len(linked.images) == len(page.images) and all((out / src).is_file() for src in linked.images)
    assert len((out / "book.html").read_bytes()) < len(html) / 3
    assert "http" not in html.replace("http-equiv", "")


def test_book_report_keeps_presets_measured_before_whose_runs_are_not_here(tmp_path, capsys):
    runs, out = tmp_path / "runs", tmp_path / "docs"
    _fake_runs(runs)
    assert book_main(["report", str(runs), "--out", str(out), "--link-plots"]) == 0
    before = json.loads((out / "claims.json").read_text())
    assert set(before["presets"]) == {"momentum", "batch_size_gap"}
    momentum_plots = before["presets"]["momentum"]["plots"]
    assert momentum_plots and before["presets"]["momentum"]["state"] == "2 of 2 runs ok"
    # later, elsewhere: only a new measurement of momentum (now failing its first claim) is under the folder
    later = tmp_path / "later"
    _record(later / "momentum/0", "momentum", ["optimizer=sgd"], {}, reached_global_minimum=1.0,
            started="2026-12-01T09:00:00", finished="2026-12-01T09:00:05")
    assert book_main(["report", str(later), "--out", str(out), "--link-plots"]) == 0
    after = json.loads((out / "claims.json").read_text())

    def gap(d):
        return [(c["claim"], c["measured"], c["verdict"]) for c in d["claims"] if c["preset"] == "batch_size_gap"]

    assert gap(after) == gap(before) and after["presets"]["batch_size_gap"] == before["presets"]["batch_size_gap"]
    assert after["presets"]["momentum"]["runs"] == 1 and "2026-12-01 09:00:00" in after["presets"]["momentum"]["ran"]
    assert [c["verdict"] for c in after["claims"] if c["preset"] == "momentum"] != \
        [c["verdict"] for c in before["claims"] if c["preset"] == "momentum"]
    chapter1 = (out / "chapter-1.md").read_text()
    assert f"Ran: {before['presets']['batch_size_gap']['ran']}." in chapter1
    assert all(f"]({p})" in chapter1 for p in before["presets"]["batch_size_gap"]["plots"])
    assert "1 presets without runs there keep what the earlier report measured" in (out / "index.md").read_text()
    assert "(not measured)</span>" not in (out / "book.html").read_text().split("batch_size_gap</a>")[1][:40]
    # --fresh: only the folder's runs
    assert book_main(["report", str(later), "--out", str(out), "--fresh", "--no-plots"]) == 0
    fresh = json.loads((out / "claims.json").read_text())
    assert set(fresh["presets"]) == {"momentum"} and {c["verdict"] for c in fresh["claims"]
                                                      if c["preset"] == "batch_size_gap"} == {"not measured"}
    # a claims.json that cannot be read is not overwritten: the presets it records would be lost
    (out / "claims.json").write_text("{broken")
    capsys.readouterr()
    assert book_main(["report", str(later), "--out", str(out), "--no-plots"]) == 2
    assert "not readable JSON" in capsys.readouterr().err and (out / "claims.json").read_text() == "{broken"


def test_a_preset_without_claims_shows_the_numbers_its_runs_recorded_and_keeps_them(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "docs"
    _record(runs / "squad", "bert_squad_full", [], {"test/f1": 68.0512, "test/em": 56.85, "val/f1": 67.67,
                                                    "train/loss": 0.9, "val/em": float("nan")})
    assert book_main(["report", str(runs), "--out", str(out), "--no-plots"]) == 0
    row = "| seed 0 | 56.85 | 68.05 | 67.67 |"   # a number it did not record (nan) is no column
    page = (out / "chapter-5.md").read_text()
    assert "| run | test/em | test/f1 | val/f1 |" in page and row in page and "train/loss" not in page
    assert "<td>68.05</td>" in (out / "book.html").read_text()
    kept = json.loads((out / "claims.json").read_text())["presets"]["bert_squad_full"]["results"]
    assert kept["rows"] == [["seed 0", "56.85", "68.05", "67.67"]]
    (tmp_path / "empty").mkdir()   # a later report without the run keeps its numbers
    assert book_main(["report", str(tmp_path / "empty"), "--out", str(out), "--no-plots"]) == 0
    assert row in (out / "chapter-5.md").read_text()


def test_book_report_draws_the_curves_the_preset_names_against_its_x(tmp_path):
    """domain_shift_table's fine-tuning curve: the preset's curves and curves_x are drawn over runs that recorded an
    older report block (without them), against finetune/step (metrics.csv has no `step` column here)."""
    runs, out = tmp_path / "runs", tmp_path / "docs"
    for n, (row, seed) in enumerate([("finetune_10", 0), ("finetune_10", 1), ("source_only", 0)]):
        run_dir = runs / f"dst/{n}"
        _record(run_dir, "domain_shift_table", [f"+domain_shift={row}", f"seed={seed}"], {"test/target_acc": 0.5},
                report={"x": "domain_shift", "metrics": ["test/target_acc"]})
        if row.startswith("finetune"):
            (run_dir / "metrics.csv").write_text("finetune/step,finetune/target_test_acc\n0,0.62\n10,0.51\n20,0.47\n")
    assert book_main(["report", str(runs), "--out", str(out), "--fresh"]) == 0
    curve = out / "plots/domain_shift_table/curve_finetune_target_test_acc.png"
    assert curve.is_file() and curve.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "curve_finetune_target_test_acc.png" in (out / "chapter-6.md").read_text()


def test_book_report_draws_a_preset_over_several_tasks_a_plot_per_task(tmp_path):
    """pretrain_vs_random sweeps four tasks: QA's F1 (points) and POS tagging's (a fraction) are not on one axis."""
    runs, out = tmp_path / "runs", tmp_path / "docs"
    for n, (task, pretrained, f1) in enumerate([("bert_squad", True, 55.0), ("bert_squad", False, 8.6),
                                                ("pos_tagging", True, 0.5), ("pos_tagging", False, 0.4)]):
        _record(runs / f"pvr/{n}", "pretrain_vs_random", [f"budget={task}", f"model.pretrained={pretrained}"],
                {"test/f1": f1}, task=task)
    assert book_main(["report", str(runs), "--out", str(out), "--fresh"]) == 0
    drawn = sorted(p.name for p in (out / "plots/pretrain_vs_random").glob("*.png"))
    assert drawn == ["bert_squad_test_f1_vs_model.pretrained.png", "pos_tagging_test_f1_vs_model.pretrained.png"]
    page = (out / "chapter-5.md").read_text()
    assert all(f"plots/pretrain_vs_random/{name}" in page for name in drawn)


def test_book_report_smoke_budget_and_records_grouping(tmp_path):
    runs = tmp_path / "runs"
    _fake_runs(runs)
    measured = by_preset(load([runs]))
    assert set(measured) == {("momentum", "full"), ("batch_size_gap", "full"), ("pooling", "smoke"), ("nope", "full")}
    _record(runs / "bsg/again", "batch_size_gap", ["task.data.batch_size=64", "seed=0"], {"test/acc": 0.5},
            started="2026-12-01T10:00:00", finished="2026-12-01T10:00:05")   # the same job, measured again
    again = by_preset(load([runs]))[("batch_size_gap", "full")]
    assert len(again.runs) == 6 and 0.5 in [r["metrics"]["test/acc"] for r in again.runs]
    out = tmp_path / "smoke_docs"
    assert book_main(["report", str(runs), "--out", str(out), "--budget", "smoke", "--no-plots"]) == 0
    chapter2 = (out / "chapter-2.md").read_text()
    assert "at the smoke budget (not a measurement)" in chapter2
    assert "checks of the code path" in (out / "index.md").read_text()


def test_book_run_skips_what_it_cannot_run(tmp_path, monkeypatch):
    monkeypatch.setenv("LEEDL_DATA_DIR", str(tmp_path / "no-data"))
    presets = read_presets(names=["batch_size_gap", "decoding_strategies"])
    lines: list[str] = []
    state = run_book(presets, Options(out=tmp_path / "book", budget="smoke"), lines.append)
    assert state["batch_size_gap"]["status"] == "skipped" and "data absent (mnist" in state["batch_size_gap"]["why"]
    assert "needs task.module.weights_from=..." in state["decoding_strategies"]["why"]
    assert lines[0].startswith("leedl book run: 0 of 2 presets to run")
    assert json.loads((tmp_path / "book/book.json").read_text()) == state


def test_a_preset_whose_run_is_going_is_running_not_failed_and_not_started_twice(tmp_path, monkeypatch, capsys):
    import platform

    monkeypatch.setenv("LEEDL_DATA_DIR", str(tmp_path / "no-data"))
    book = tmp_path / "book"
    # a run of another book run, still going (this process stands for it), beside one that was killed
    _record(book / "momentum", "momentum", ["optimizer=sgd"], {}, status="running", pid=os.getpid(),
            host=platform.node(), finished=None)
    _record(book / "momentum.2", "momentum", ["optimizer=momentum"], {}, status="running", pid=2 ** 22 + 7,
            host=platform.node(), finished=None)
    [momentum] = read_presets(names=["momentum"])
    assert book_main(["plan", "--preset", "momentum", "--dir", str(book)]) == 0
    assert "partly (0 of 2), 1 running, 1 failed" in capsys.readouterr().out
    lines: list[str] = []
    state = run_book([momentum], Options(out=book, budget=FULL), lines.append)
    assert lines[0].startswith("leedl book run: 0 of 1 presets to run")
    assert "momentum: running now (1 run(s) in progress" in lines[1] and "momentum" not in state


def fake_runs(monkeypatch, sleep_s: float) -> list[tuple[str, int]]:
    """`leedl book run` with each preset's command replaced by a sleep: the (preset, jobs) it was started with."""
    import leedl_cli.book.run as book_run

    monkeypatch.setattr(book_run, "missing_data", lambda tasks, root: [])
    seen: list[tuple[str, int]] = []

    def fake(preset, where, continuing, opts, reads, jobs=None):
        seen.append((preset.name, jobs))
        return [sys.executable, "-c", f"import time; time.sleep({sleep_s})"]

    monkeypatch.setattr(book_run, "command", fake)
    return seen


def started_and_ended(lines: list[str]) -> list[tuple[str, str]]:
    """(preset, "started" | "ended") for each progress line of a book run, in order."""
    return [(line.split("] ")[1].split(":")[0], "started" if ": started" in line else "ended")
            for line in lines if line.startswith("[")]


def test_book_run_keeps_k_slots_busy_and_waits_for_what_a_preset_reads(tmp_path, monkeypatch):
    import leedl_cli.book.run as book_run

    seen = fake_runs(monkeypatch, 0.4)
    presets = read_presets(names=["own_pretraining", "own_pretraining_mlm", "momentum", "mc_vs_td"])
    lines: list[str] = []
    state = run_book(presets, Options(out=tmp_path / "book", budget="smoke", jobs=2), lines.append, poll_s=0.05)
    events = started_and_ended(lines)
    # two at a time: the second preset starts before the first ends
    assert events[:2] == [(events[0][0], "started"), (events[1][0], "started")]
    # own_pretraining reads own_pretraining_mlm's model: it starts only after that one ended
    assert events.index(("own_pretraining", "started")) > events.index(("own_pretraining_mlm", "ended"))
    assert all(jobs == 1 for _, jobs in seen) and len(seen) == 4   # smoke: one slot a preset
    assert set(state) == {p.name for p in presets} and all(s["exit"] == 0 for s in state.values())
    # a second book run into the same folder keeps the first one's entries in book.json
    run_book(read_presets(names=["pooling"]), Options(out=tmp_path / "book", budget="smoke"), lines.append, poll_s=0.05)
    assert set(json.loads((tmp_path / "book/book.json").read_text())) == {p.name for p in presets} | {"pooling"}
    full = Options(out=tmp_path, budget="full", jobs=4)
    by_name = {p.name: p for p in presets}
    assert book_run.job_slots(by_name["momentum"], 2, 4, full.budget) == 2   # a sweep of two runs uses two slots
    assert book_run.job_slots(by_name["mc_vs_td"], 1, 4, full.budget) == 1


def test_book_run_command_lines(tmp_path):
    presets = {p.name: p for p in read_presets(names=["hpo_digits", "batch_size_gap", "mc_vs_td"])}
    smoke = Options(out=tmp_path, budget="smoke", jobs=2, threads=1, extra=["trainer.max_epochs=1"])
    hpo = command(presets["hpo_digits"], tmp_path / "hpo_digits", False, smoke, {}, jobs=1)
    assert hpo[3:5] == ["run", "-m"] and not any(a.startswith("hydra/launcher") for a in hpo)   # hpo_digits leaves hydra.mode to the command line
    assert "hydra.sweeper.n_trials=2" in hpo and "debug=smoke" in hpo and "seed=0" not in hpo
    gap = command(presets["batch_size_gap"], tmp_path / "gap", True, smoke, {})
    assert {"seed=0", "skip_done=true", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "threads=1",
            f"hydra.sweep.dir={tmp_path / 'gap'}"} <= set(gap) and gap[-1] == "trainer.max_epochs=1"
    single = command(presets["mc_vs_td"], tmp_path / "mc", False, Options(out=tmp_path), {"model.x": "/a/b"})
    assert "-m" not in single[3:] and f"hydra.run.dir={tmp_path / 'mc'}" in single and "model.x=/a/b" in single
    assert not any(a.startswith(("debug=", "hydra/launcher")) for a in single)


def test_a_wall_clock_budgeted_preset_takes_the_whole_machine(tmp_path, monkeypatch):
    """transformer_vs_rnn's runs stop at trainer.max_time: with --jobs 2 --threads 1 each of its runs gets both
    threads, one run at a time, and a preset after it waits until it ended (two at a time otherwise)."""
    import leedl_cli.book.run as book_run

    presets = {p.name: p for p in read_presets(names=["transformer_vs_rnn", "momentum", "mc_vs_td"])}
    full = Options(out=tmp_path, budget="full", jobs=2, threads=1)
    timed = command(presets["transformer_vs_rnn"], tmp_path / "t", False, full, {}, jobs=2)
    assert "threads=2" in timed and not any(a.startswith("hydra/launcher") for a in timed)
    assert {"threads=1", "hydra.launcher.n_jobs=2"} <= set(command(presets["momentum"], tmp_path / "m", False, full, {}))
    assert book_run.job_slots(presets["transformer_vs_rnn"], 2, 2, "full", 2) == 2
    assert book_run.job_slots(presets["transformer_vs_rnn"], 2, 1, "full", 2) == 0   # one slot busy: it waits
    assert book_run.job_slots(presets["transformer_vs_rnn"], 2, 1, "smoke", 2) == 1   # smoke: no wall-clock budget

    seen = fake_runs(monkeypatch, 0.3)
    lines: list[str] = []
    run_book([presets["mc_vs_td"], presets["transformer_vs_rnn"], presets["momentum"]],
             Options(out=tmp_path / "book", jobs=2), lines.append, poll_s=0.05)
    events = started_and_ended(lines)
    # transformer_vs_rnn waits for mc_vs_td's slot, and momentum (which could take the free slot) waits behind it
    assert events == [("mc_vs_td", "started"), ("mc_vs_td", "ended"), ("transformer_vs_rnn", "started"),
                      ("transformer_vs_rnn", "ended"), ("momentum", "started"), ("momentum", "ended")]
    assert seen == [("mc_vs_td", 1), ("transformer_vs_rnn", 2), ("momentum", 2)]
    assert "one at a time on all 2 slots" in next(line for line in lines if "transformer_vs_rnn: started" in line)


def test_stopping_the_book_run_stops_the_worker_processes_of_its_sweeps(tmp_path, monkeypatch):
    """SIGTERM to `leedl book run` reaches the whole process group of each running preset: a joblib worker
    (here a grandchild that would sleep for a minute) is stopped too, not left to run on unwatched."""
    import signal
    import threading

    import leedl_cli.book.run as book_run

    monkeypatch.setattr(book_run, "missing_data", lambda tasks, root: [])
    worker_pid = tmp_path / "worker.pid"
    spawn = ("import subprocess, sys, time; w = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
             f"open({str(worker_pid)!r}, 'w').write(str(w.pid)); time.sleep(60)")
    monkeypatch.setattr(book_run, "command", lambda *a, **k: [sys.executable, "-c", spawn])

    def stop_when_started():
        deadline = time.time() + 30
        while not worker_pid.is_file() or not worker_pid.read_text():
            if time.time() > deadline:
                return
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=stop_when_started, daemon=True).start()
    with pytest.raises(SystemExit) as stopped:
        run_book(read_presets(names=["mc_vs_td"]), Options(out=tmp_path / "book", jobs=1), lambda line: None,
                 poll_s=0.05)
    assert stopped.value.code == 128 + signal.SIGTERM
    pid = int(worker_pid.read_text())
    for _ in range(100):   # the worker gets SIGTERM with its group; wait until the kernel has reaped or marked it
        try:
            os.kill(pid, 0)
            state = Path(f"/proc/{pid}/stat").read_text().split()[2] if Path(f"/proc/{pid}/stat").exists() else "X"
            if state == "Z":
                break
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        raise AssertionError("the sweep's worker process outlived the book run")
    assert json.loads((tmp_path / "book/book.json").read_text())["mc_vs_td"]["status"] == "stopped"


def test_book_refuses_bad_arguments(capsys):
    assert book_main(["frobnicate"]) == 2
    assert book_main(["plan", "--preset", "no_such_preset"]) == 2
    assert "no such preset" in capsys.readouterr().err
    assert book_main(["plan", "--chapter", "9"]) == 2
    assert book_main(["report", "/nonexistent/runs"]) == 2
    assert book_main(["run", "--jobs", "0"]) == 2


@pytest.mark.slow
def test_book_run_smoke_of_one_preset_is_resumable(tmp_path):
    env = {**os.environ, "WANDB_MODE": "offline", "LEEDL_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "leedl_cli.cli", "book", "run", "--budget", "smoke", "--preset", "momentum",
               "--dir", str(tmp_path / "book"), "--threads", "1"]
    first = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert first.returncode == 0, first.stderr
    assert "[1/1] momentum: ok — 2 of 2 runs ok" in first.stdout and "ETA" in first.stdout
    state = json.loads((tmp_path / "book/book.json").read_text())
    assert state["momentum"]["status"] == "ok" and state["momentum"]["runs_ok"] == 2
    records = [json.loads(p.read_text()) for p in (tmp_path / "book/momentum").glob("*/results.json")]
    assert len(records) == 2
    assert all(r["choices"]["experiment"] == "momentum" and r["choices"]["debug"] == "smoke" for r in records)
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0 and "[1/1] momentum: done" in again.stdout
    assert len(list((tmp_path / "book").glob("momentum*"))) == 1


def _preset(conf: Path, name: str, header: str, body: str) -> Path:
    (conf / "experiment").mkdir(parents=True, exist_ok=True)
    path = conf / "experiment" / f"{name}.yaml"
    path.write_text(f"# @package _global_\n# {name} — chapter 2.1: {header}\n{body}")
    return path


def test_run_minutes_comes_before_the_header_and_max_time(tmp_path):
    from leedl_cli.book.plan import GUESS, row
    from leedl_cli.book.presets import per_run_estimate

    conf = tmp_path / "conf"
    timed = 'trainer:\n  max_time: "00:00:30:00"\n'
    _preset(conf, "keyed", "about 8 min a run", timed + "report:\n  run_minutes: 12   # two at a time\n  x: seed\n")
    _preset(conf, "header", "about 8 min a run", timed + "report:\n  x: seed\n")
    _preset(conf, "budget", "nothing said", timed)
    _preset(conf, "silent", "nothing said", "seed: 0\n")
    _preset(conf, "small", "nothing said", "report:\n  run_minutes: 0.05\n")
    _preset(conf, "inherits", "nothing said", "defaults:\n  - keyed\n  - _self_\nreport:\n  run_minutes: 3\n")
    presets = {p.name: p for p in read_presets(conf)}
    assert presets["keyed"].run_minutes == 12.0 and presets["inherits"].run_minutes == 3.0
    assert per_run_estimate(presets["keyed"]) == (720.0, "2 cores")
    assert per_run_estimate(presets["header"]) == (480.0, "header")
    assert per_run_estimate(presets["budget"]) == (1800.0, "max_time")
    assert per_run_estimate(presets["silent"]) == (None, "no time known")
    assert per_run_estimate(presets["small"]) == (3.0, "2 cores")
    assert per_run_estimate(presets["inherits"]) == (180.0, "2 cores")   # its own key wins over the included one's
    assert row(presets["keyed"], {}).source == "estimate (2 cores: 12 min a run)"
    assert row(presets["keyed"], {}).seconds == 720.0
    assert row(presets["silent"], {}).source == GUESS


@pytest.mark.parametrize("value", ["0", "-2", "twelve", "true", ".nan", "[12]"])
def test_a_bad_run_minutes_is_refused_naming_the_file(tmp_path, monkeypatch, capsys, value):
    import leedl_cli.paths

    conf = tmp_path / "conf"
    path = _preset(conf, "bad", "nothing said", f"report:\n  run_minutes: {value}\n")
    with pytest.raises(PresetError, match=r"bad\.yaml: report\.run_minutes=.*expected a positive number"):
        read_presets(conf)
    monkeypatch.setattr(leedl_cli.paths, "conf_dir", lambda: conf)
    monkeypatch.setenv("LEEDL_OUTPUT_DIR", str(tmp_path / "no-outputs"))
    assert book_main(["plan"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1 and str(path) in captured.err


def test_every_preset_states_its_run_time():
    """A preset must say what a run costs (report.run_minutes, or a header's "N min a run", or trainer.max_time):
    the book's total is wrong when presets fall back to the 1-minute guess."""
    from leedl_cli.book.plan import GUESS, row
    from leedl_cli.book.presets import per_run_estimate

    presets = read_presets()
    unstated = [p.name for p in presets if per_run_estimate(p)[0] is None or row(p, {}).source == GUESS]
    assert unstated == [], f"give these presets report.run_minutes: {unstated}"
    keyed = {p.name: p.run_minutes for p in presets if p.run_minutes is not None}
    assert len(keyed) >= 30 and all(m > 0 for m in keyed.values())
    assert keyed["batch_size_gap_converged_fashion"] != keyed["batch_size_gap_converged"]   # not inherited


def test_leedl_report_reads_a_record_with_run_minutes(tmp_path, capsys):
    from leedl_cli.report.cli import report_main

    for i, (batch, acc) in enumerate([(64, 0.97), (64, 0.971), (6000, 0.90), (6000, 0.91)]):
        _record(tmp_path / f"runs/{i}", "batch_size_gap", [f"task.data.batch_size={batch}", f"seed={i % 2}"],
                {"test/acc": acc}, report={"run_minutes": 0.2, "x": "task.data.batch_size", "metrics": ["test/acc"],
                                           "book": [{"claim": "SB > LB", "metric": "test/acc", "book": "SB > LB",
                                                     "check": "64 > 6000"}]})
    assert report_main([str(tmp_path / "runs"), "--no-plots", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "SB > LB" in out and "holds" in out


@pytest.mark.slow
def test_a_stopped_book_run_stops_its_runs(tmp_path):
    """SIGTERM to `leedl book run` ends the runs it started (no orphan keeps computing) and records them as stopped."""
    import signal
    import time

    pid_file = tmp_path / "run.pid"
    script = f"""
import sys
import leedl_cli.book.run as book_run
from leedl_cli.book.presets import read_presets
book_run.missing_data = lambda tasks, root: []
book_run.command = lambda *a, **k: [sys.executable, "-c",
    "import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(120)"]
book_run.run_book(read_presets(names=["momentum"]), book_run.Options(out=__import__("pathlib").Path({str(tmp_path / "book")!r}),
                  budget="smoke"), print, poll_s=0.05)
"""
    book = subprocess.Popen([sys.executable, "-c", script])
    for _ in range(300):
        if pid_file.is_file() and pid_file.read_text():
            break
        time.sleep(0.1)
    run_pid = int(pid_file.read_text())
    book.send_signal(signal.SIGTERM)
    assert book.wait(timeout=60) == 128 + signal.SIGTERM
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):
        os.kill(run_pid, 0)
    assert json.loads((tmp_path / "book/book.json").read_text())["momentum"]["status"] == "stopped"
