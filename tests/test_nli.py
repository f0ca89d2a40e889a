"""task=nli (ch. 5, section 5.2.1 case 3): sentence pairs -> entailment / neutral / contradiction.

Files in the real formats are written by the tests (the mirrored e-SNLI s1/s2/labels layout, SNLI/MNLI .jsonl and
.txt); where the mirror is present one smoke run also reads the real SNLI files (skipped, saying so, elsewhere).
"""
from __future__ import annotations

import json
import random

import pytest
from conftest import data_available

from leedl_cli.data.snli import LABELS, held_out_by_premise, read_mirror, read_pairs
from leedl_cli.errors import LeedlError

SUBJECTS = "a man|a woman|two dogs|a child|the old farmer|three girls|a cyclist|the chef".split("|")
ACTS = "is running|is sleeping|is eating soup|is playing guitar|is reading a book|is swimming|is singing|is cooking".split("|")
PLACES = "in the park|on the beach|at home|in the city|near a lake|in a kitchen".split("|")


def nli_pairs(n: int, seed: int) -> list[tuple[str, str, str]]:
    """Learnable pairs: the hypothesis repeats the premise's act (entailment), negates it (contradiction), or
    names another act (neutral); three hypotheses per premise, as in SNLI."""
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        s, a, p = rng.choice(SUBJECTS), rng.choice(ACTS), rng.choice(PLACES)
        other = rng.choice([x for x in ACTS if x != a])
        premise = f"{s.capitalize()} {a} {p} ."
        out += [(premise, f"{s.capitalize()} {a} .", "entailment"),
                (premise, f"{s.capitalize()} {other} .", "neutral"),
                (premise, f"{s.capitalize()} {a.replace('is ', 'is not ')} .", "contradiction")]
    return out[:n]


def write_snli(folder, n_dev: int = 150, n_test: int = 60) -> None:
    """The mirrored layout: line-aligned s1/s2/labels.{dev,test} (tokenised text, one pair per line)."""
    (folder / "snli").mkdir(parents=True, exist_ok=True)
    for split, n, seed in (("dev", n_dev, 0), ("test", n_test, 1)):
        pairs = nli_pairs(n, seed)
        for key, col in (("s1", 0), ("s2", 1), ("labels", 2)):
            (folder / "snli" / f"{key}.{split}").write_text("".join(f"{p[col]} \n" if col < 2 else f"{p[col]}\n"
                                                                    for p in pairs), encoding="utf-8")


def write_jsonl(path, pairs, no_gold: int = 0) -> None:
    rows = [{"sentence1": a, "sentence2": b, "gold_label": y, "annotator_labels": [y]} for a, b, y in pairs]
    rows += [{"sentence1": "A dog .", "sentence2": "A cat .", "gold_label": "-"}] * no_gold
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def write_txt(path, pairs) -> None:
    """SNLI/MNLI .txt: tab-separated with a header (parses left empty here)."""
    head = "gold_label\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1\tsentence2\tpairID"
    lines = [head] + [f"{y}\t\t\t{a}\t{b}\t{i}" for i, (a, b, y) in enumerate(pairs)] + ["-\t\t\tA dog .\tA cat .\tx"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _ok(res):
    assert res["status"] == "ok", res.get("error")
    return res


def test_readers_keep_gold_pairs_and_drop_dash_labels(tmp_path):
    pairs = nli_pairs(9, 0)
    write_jsonl(tmp_path / "a.jsonl", pairs, no_gold=2)
    write_txt(tmp_path / "a.txt", pairs)
    for name, dropped in (("a.jsonl", 2), ("a.txt", 1)):
        got, n_dropped = read_pairs(tmp_path / name)
        assert n_dropped == dropped
        assert got == [(a, b, LABELS.index(y)) for a, b, y in pairs]
    write_snli(tmp_path, n_dev=9, n_test=3)
    got, dropped = read_mirror(tmp_path / "snli", "dev")
    assert dropped == 0 and [y for _, _, y in got] == [LABELS.index(y) for _, _, y in pairs]


def test_bad_label_is_a_clear_error(tmp_path):
    (tmp_path / "bad.jsonl").write_text(json.dumps({"sentence1": "a", "sentence2": "b", "gold_label": "maybe"}) + "\n")
    with pytest.raises(LeedlError, match="maybe"):
        read_pairs(tmp_path / "bad.jsonl")


def test_validation_slice_holds_whole_premises_and_is_deterministic():
    pairs = [(p, h, y) for p, h, y in [(a, b, LABELS.index(c)) for a, b, c in nli_pairs(300, 3)]]
    train, val = held_out_by_premise(pairs, 30, seed=0)
    assert len(train) + len(val) == len(pairs) and len(val) >= 30
    assert not {p for p, _, _ in train} & {p for p, _, _ in val}
    assert held_out_by_premise(pairs, 30, seed=0) == (train, val)
    assert held_out_by_premise(pairs, 30, seed=1)[1] != val


@pytest.mark.parametrize("source", ["written", pytest.param("mirror", marks=pytest.mark.slow)])
def test_nli_smoke_predictions_rescore_to_the_reported_accuracy(run_leedl, tmp_path, source):
    from leedl_cli.tasks.sentiment import score_predictions

    extra = []
    if source == "mirror":
        if not data_available("snli"):
            pytest.skip("snli is not mirrored here (LEEDL_DATA_DIR / ../shared/data)")
    else:
        write_snli(tmp_path / "data")
        extra = [f"data_dir={tmp_path / 'data'}"]
    res = _ok(run_leedl(["task=nli", "debug=smoke", "seed=0", "threads=1", *extra]))
    split = res["data_split"]
    assert split["train_pairs"] == 48 and split["test_pairs"] == 24 and split["val_pairs"] >= 12
    scored = score_predictions(res["predictions_test"])
    assert scored["n"] == 24
    assert scored["acc"] == pytest.approx(res["metrics"]["test/acc"], abs=1e-6)
    header = (tmp_path / "run" / "predictions_test.tsv").read_text().splitlines()[0].split("\t")
    assert header == ["index", "label", "prediction", "text"]


@pytest.mark.slow
def test_own_snli_mnli_files_train_validation_test(run_leedl, tmp_path):
    write_jsonl(tmp_path / "train.jsonl", nli_pairs(60, 0), no_gold=3)
    write_txt(tmp_path / "dev.txt", nli_pairs(15, 1))
    write_jsonl(tmp_path / "test.jsonl", nli_pairs(18, 2), no_gold=1)
    res = _ok(run_leedl(["task=nli", "debug=smoke", "seed=0", "threads=1", f"data_dir={tmp_path}/nowhere",
                         f"task.data.train_file={tmp_path}/train.jsonl", f"task.data.validation_file={tmp_path}/dev.txt",
                         f"task.data.test_file={tmp_path}/test.jsonl", "task.data.max_test_examples=null"]))
    split = res["data_split"]
    assert (split["train_pairs"], split["val_pairs"], split["test_pairs"]) == (48, 15, 18)
    assert split["dropped_no_gold_label"] == {"train": 3, "val": 1, "test": 1}
    assert "train.jsonl" in split["how"] and "test.jsonl" in split["how"]


def test_missing_snli_names_the_folder_and_the_fix(run_leedl, tmp_path):
    res = run_leedl(["task=nli", "debug=smoke", f"data_dir={tmp_path}/nowhere"])
    assert res["status"] == "failed" and res["error_type"] == "DataNotFoundError"
    assert f"{tmp_path}/nowhere/snli" in res["error"] and "train_file" in res["error"]


@pytest.mark.slow
def test_nli_small_bert_learns_written_pairs_pinned(run_leedl, tmp_path):
    """bert_small from random init, 2 epochs on 600 written pairs (seed 0): well above the 1/3 of chance on 90 test
    pairs — measured 2/3 (negation -> contradiction is learnt first; telling entailment from neutral needs the
    premise's act to be matched, which 2 epochs of a random-init network do not do yet)."""
    write_snli(tmp_path / "data", n_dev=660, n_test=90)
    res = _ok(run_leedl(["task=nli", "model=bert_small", "seed=0", "threads=1", "logger=none", "callbacks=none",
                         "trainer.enable_progress_bar=false", "trainer.max_epochs=2", "trainer.deterministic=true",
                         "optimizer.lr=1e-3", "task.data.val_size=60", "task.data.max_length=32",
                         "task.data.batch_size=16", f"data_dir={tmp_path / 'data'}"]))
    assert res["metrics"]["test/acc"] == pytest.approx(PINNED_SMALL_ACC, abs=0.05)
    assert res["metrics"]["test/acc"] > 0.6


PINNED_SMALL_ACC = 0.6667
