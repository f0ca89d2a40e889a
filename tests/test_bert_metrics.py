"""SQuAD v1.1 metrics, span decoding, windows/offsets, masking and splits of the BERT tasks (no training)."""
from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import torch

from leedl_cli.analysis.squad_metrics import exact_match, f1, normalize_answer, squad_scores
from leedl_cli.tasks.qa import best_span, decode_answers


# ---- official SQuAD v1.1 normalisation and scores, computed by hand --------------------------------
def test_normalize_answer_like_the_official_script():
    assert normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert normalize_answer("an Apple, a day") == "apple day"
    assert normalize_answer("  Theory  ") == "theory"          # "the" only as a whole word


def test_exact_match_and_f1_hand_computed():
    assert exact_match("the Denver Broncos", "Denver Broncos") == 1.0
    assert exact_match("Denver", "Denver Broncos") == 0.0
    # pred {denver}, gold {denver, broncos}: P = 1, R = 1/2 -> F1 = 2/3
    assert f1("Denver", "Denver Broncos") == pytest.approx(2 / 3)
    # pred {big, red, cat}, gold {red, cat, sat}: 2 common, P = R = 2/3 -> F1 = 2/3
    assert f1("a big red cat", "the red cat sat") == pytest.approx(2 / 3)
    assert f1("nothing", "Denver") == 0.0
    # Chinese: compared per character: pred 台 北 101, gold 台 北 市 101 大 樓: P = 1, R = 1/2 -> 2/3
    assert f1("台北101", "台北市101大樓") == pytest.approx(2 / 3)


def test_squad_scores_take_the_best_ground_truth_and_average():
    preds = {"q1": "Denver Broncos", "q2": "Carolina", "q3": "wrong"}
    answers = {"q1": ["Denver Broncos", "Broncos"], "q2": ["Carolina Panthers"], "q3": ["right"]}
    s = squad_scores(preds, answers)
    assert s["exact_match"] == pytest.approx(100 / 3)
    assert s["f1"] == pytest.approx(100 * (1 + 2 / 3 + 0) / 3)
    assert squad_scores({}, {"q": ["x"]}) == {"exact_match": 0.0, "f1": 0.0}


# ---- span decoding ---------------------------------------------------------------------------------
def test_best_span_respects_order_passage_and_length():
    offsets = [None, None, (0, 3), (4, 9), (10, 15), None]       # [CLS] q [SEP]? ... passage tokens 2-4
    start = np.array([9.0, 0, 1, 2, 8, 7.0])                      # argmax 0 ([CLS]) and 5 are not passage
    end = np.array([9.0, 0, 5, 1, 0, 9.0])
    score, a, b = best_span(start, end, offsets)
    # valid pairs need start <= end inside the passage: best is start 4? end must be >= 4 -> (4,4) = 8+0 = 8;
    # (3,3) = 2+1 = 3, (2,2) = 1+5 = 6, (2,3) = 1+1 ... -> (4,4) wins
    assert (a, b) == (10, 15) and score == pytest.approx(8.0)
    _, a, b = best_span(start, end, offsets, max_answer_tokens=1)
    assert (a, b) == (10, 15)
    start2 = np.array([0, 0, 5.0, 0, 0, 0])
    end2 = np.array([0, 0, 0, 0, 5.0, 0])
    assert best_span(start2, end2, offsets)[1:] == (0, 15)
    assert best_span(start2, end2, offsets, max_answer_tokens=2)[1:] != (0, 15)   # 3 tokens is too long


def test_decode_answers_takes_the_best_window_and_maps_back_to_characters():
    context = "Paris is the capital of France."
    examples = [{"id": "q", "context": context, "answers": {"text": ["Paris"], "answer_start": [0]}}]
    feats = [{"example_index": 0, "offsets": [None, (0, 5), (6, 8)]},
             {"example_index": 0, "offsets": [None, (24, 30)]}]
    starts = {0: np.array([0, 3.0, 0]), 1: np.array([0, 1.0])}
    ends = {0: np.array([0, 3.0, 0]), 1: np.array([0, 1.0])}
    assert decode_answers(examples, feats, starts, ends) == {"q": "Paris"}
    starts[1] = np.array([0, 9.0])
    ends[1] = np.array([0, 9.0])
    assert decode_answers(examples, feats, starts, ends) == {"q": "France"}


# ---- data: SQuAD JSON (zip or plain), split by article, windows with offsets --------------------------
def _squad_doc(n_articles=5):
    data = []
    for a in range(n_articles):
        ctx = f"Article {a} says that the answer number {a} is forty two. " * 3
        qas = [{"id": f"{a}-{k}", "question": f"What is answer {a}?",
                "answers": [{"text": "forty two", "answer_start": ctx.index("forty two")}]} for k in range(2)]
        data.append({"title": f"T{a}", "paragraphs": [{"context": ctx, "qas": qas}]})
    return {"version": "1.1", "data": data}


def test_read_squad_zip_and_json_and_split_by_article(tmp_path):
    from leedl_cli.data.squad import examples_of, read_squad, split_articles

    doc = _squad_doc(10)
    (tmp_path / "d.json").write_text(json.dumps(doc))
    with zipfile.ZipFile(tmp_path / "d.json.zip", "w") as zf:
        zf.writestr("d.json", json.dumps(doc))
    assert read_squad(tmp_path / "d.json") == read_squad(tmp_path / "d.json.zip") == doc["data"]
    tr, va, te = split_articles(doc["data"])
    titles = [{a["title"] for a in part} for part in (tr, va, te)]
    assert len(titles[0]) == 8 and len(titles[1]) == 1 and len(titles[2]) == 1
    assert not (titles[0] & titles[1]) and not (titles[0] & titles[2]) and not (titles[1] & titles[2])
    assert split_articles(doc["data"]) == (tr, va, te)                     # deterministic
    assert len(examples_of(te)) == 2


@pytest.fixture(scope="module")
def tokenizer():
    from leedl_cli.models.bert import load_tokenizer

    return load_tokenizer("minilm")


def test_windows_cover_the_answer_with_overlap(tokenizer):
    from leedl_cli.data.squad import tokenize_examples

    ctx = " ".join(f"w{i}" for i in range(60)) + " the answer is Zanzibar today . " + " ".join(f"v{i}" for i in range(60))
    ex = [{"id": "x", "question": "Where?", "context": ctx,
           "answers": {"text": ["Zanzibar"], "answer_start": [ctx.index("Zanzibar")]}}]
    train = tokenize_examples(tokenizer, ex, max_length=64, stride=16, train=True)
    assert len(train) > 2                                                  # a long passage -> several windows
    assert all(len(f["input_ids"]) <= 64 for f in train)
    assert train[0]["input_ids"][0] == tokenizer.cls_token_id
    hits = [f for f in train if f["start_positions"] > 0]
    assert hits, "some window holds the answer"
    f = hits[0]
    span = tokenizer.decode(f["input_ids"][f["start_positions"]:f["end_positions"] + 1])
    assert span.replace(" ", "") == "zanzibar"
    evals = tokenize_examples(tokenizer, ex, max_length=64, stride=16, train=False)
    for feat in evals:                       # offsets: None outside the passage, characters of ctx inside
        assert feat["offsets"][0] is None
        a, b = next(o for o in feat["offsets"] if o is not None)
        assert ctx[a:b].strip()


def test_dynamic_padding_pads_to_the_longest_in_the_batch():
    from leedl_cli.data.text import PadCollator

    batch = PadCollator(0)([{"input_ids": [1, 2, 3], "attention_mask": [1, 1, 1], "labels": 1, "feature_index": 0},
                            {"input_ids": [4], "attention_mask": [1], "labels": 0, "feature_index": 1}])
    assert batch["input_ids"].tolist() == [[1, 2, 3], [4, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [1, 0]


def test_masking_is_15_percent_with_80_10_10(tokenizer):
    from leedl_cli.data.text import IGNORE_INDEX, mask_tokens

    ids = torch.randint(1000, 20000, (400, 128), generator=torch.Generator().manual_seed(0))
    ids[:, 0] = tokenizer.cls_token_id
    inputs, labels = mask_tokens(ids, tokenizer, generator=torch.Generator().manual_seed(1))
    chosen = labels != IGNORE_INDEX
    assert not chosen[:, 0].any()                                          # special tokens never chosen
    assert chosen.float().mean().item() == pytest.approx(0.15 * 127 / 128, abs=0.005)
    masked = (inputs == tokenizer.mask_token_id) & chosen
    same = (inputs == ids) & chosen
    n = chosen.sum().item()
    assert masked.sum().item() / n == pytest.approx(0.8, abs=0.02)
    assert same.sum().item() / n == pytest.approx(0.1, abs=0.02)          # 10% unchanged (+ rare random hits)
    assert (labels[chosen] == ids[chosen]).all()


def test_squad_dev_split_is_pinned():
    """The mirrored SQuAD v1.1 dev split by article is fixed: 48 articles -> 38 / 5 / 5."""
    from conftest import data_available

    if not data_available("squad"):
        pytest.skip("SQuAD dev not mirrored here")
    from leedl_cli.data.squad import dataset_file, examples_of, read_squad, split_articles

    arts = read_squad(dataset_file("squad", None))
    tr, va, te = split_articles(arts)
    assert (len(arts), len(tr), len(va), len(te)) == (48, 38, 5, 5)
    assert sum(len(examples_of(p)) for p in (tr, va, te)) == 10570
