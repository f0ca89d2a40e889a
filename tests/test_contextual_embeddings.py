"""Chapter 5.2.2, why BERT works: task=contextual_embeddings (an ambiguous word's vectors by sense, layer by layer)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from leedl_cli.data.ambiguous_words import SHIPPED, SenseSentence, read_sentences, select
from leedl_cli.errors import LeedlError
from leedl_cli.tasks.contextual_embeddings import ContextualEmbeddings, sense_gap, word_pieces

BOOK_WORDS = {"bank", "apple", "bat", "spring"}


@pytest.fixture(scope="module")
def minilm_task():
    """The task on MiniLM, as a run builds it (eval mode: Lightning's test phase turns dropout off)."""
    from leedl_cli.data.tokenizers import load_pretrained_tokenizer
    from leedl_cli.models.bert import Bert

    tok = load_pretrained_tokenizer("minilm")
    task = ContextualEmbeddings(Bert(backbone="minilm"), sentences=(), tokenizer=tok)
    return task.eval()


def sentence(word: str, text: str, index: int = 0, sense: str = "x") -> SenseSentence:
    return SenseSentence(index, word, sense, text, text.index(word))


# ---- configs -------------------------------------------------------------------------------------------------
def test_task_and_preset_compose(compose_cfg):
    from leedl_cli.validate import problems

    cfg = compose_cfg(["task=contextual_embeddings"])
    assert cfg.model.name == "bert" and cfg.model.backbone == "minilm" and cfg.task.fit is False
    assert cfg.task.data.backbone == "minilm", "the tokenizer is the model's backbone's"
    assert problems(cfg) == []
    smoke = compose_cfg(["task=contextual_embeddings", "debug=smoke"])
    assert list(smoke.task.data.words) == ["bank", "apple"] and smoke.task.data.max_sentences_per_sense == 3
    own = compose_cfg(["task=contextual_embeddings", "model.backbone=/some/run/hf_model"])
    assert own.task.data.backbone == "/some/run/hf_model"
    preset = compose_cfg(["experiment=contextual_embeddings"])
    assert preset.task.name == "contextual_embeddings" and problems(preset) == []
    claims = {row.metric: row.check for row in preset.report.book}
    assert claims["test/sense_gap_last_min"] == "> 0" and claims["test/sense_gap_control"] == "0 ± 1e-9"
    assert claims["test/sense_gap_growth"] == "> 0"
    assert {f"test/sense_gap_last_{w}" for w in BOOK_WORDS} <= set(claims)


# ---- the sentence set ----------------------------------------------------------------------------------------
def test_shipped_sentences_hold_each_word_once_ten_per_sense():
    rows = read_sentences(SHIPPED)   # every line checked: the word exactly once, written as in the word column
    words = {s.word for s in rows}
    assert BOOK_WORDS <= words and len(words) >= 6
    for word in words:
        senses = {s.sense for s in rows if s.word == word}
        assert len(senses) == 2, word
        for sense in senses:
            assert sum(s.word == word and s.sense == sense for s in rows) >= 10, (word, sense)
    assert len({s.sentence for s in rows}) == len(rows), "no sentence twice"
    assert all(s.sentence[s.start:s.end] == s.word for s in rows)


def test_a_bad_sentence_file_names_the_line(tmp_path):
    path = tmp_path / "words.tsv"
    path.write_text("word\tsense\tsentence\nbank\triver\tThe bank of the river.\n"
                    "bank\tmoney\tThe bank lent money to another bank.\n", encoding="utf-8")
    with pytest.raises(LeedlError, match=r"line 3: .* 2 times"):
        read_sentences(path)
    path.write_text("word\tsense\tsentence\napple\tcompany\tApple sells phones.\n", encoding="utf-8")
    with pytest.raises(LeedlError, match=r"line 2: .*'Apple'"):
        read_sentences(path)


def test_selection_keeps_words_and_needs_two_senses():
    rows = read_sentences(SHIPPED)
    chosen = select(rows, ["apple", "bank"], 3)
    assert [(s.word, s.sense) for s in chosen[:3]] == [("apple", "fruit")] * 3
    assert len(chosen) == 12 and [s.index for s in chosen] == list(range(12))
    with pytest.raises(LeedlError, match="banana not in the sentence file"):
        select(rows, ["banana"], None)
    with pytest.raises(LeedlError, match="at least 2"):
        select(rows, ["bank"], 1)
    with pytest.raises(LeedlError, match="one sense"):
        select([s for s in rows if s.sense != "money"], ["bank"], None)


# ---- the measurement -----------------------------------------------------------------------------------------
def test_word_pieces_by_offsets():
    # [CLS] the bat uses echo ##lo ##cation to hunt . [SEP]
    offsets = [(0, 0), (0, 3), (4, 7), (8, 12), (13, 17), (17, 19), (19, 25), (26, 28), (29, 33), (33, 34), (0, 0)]
    assert word_pieces(offsets, 13, 25) == [4, 5, 6]
    assert word_pieces(offsets, 4, 7) == [2]
    assert word_pieces(offsets, 0, 3) == [1], "the [CLS] token's empty span (0, 0) is never a piece"


def test_the_word_vector_is_the_mean_of_its_pieces(minilm_task):
    """Hand-checked: MiniLM splits 'echolocation' into echo ##lo ##cation (positions 4, 5, 6 after [CLS] the bat
    uses); the word's vector is the mean of those three positions at every layer, the control the mean of their
    word-piece embeddings."""
    tok, hf = minilm_task.tokenizer, minilm_task.model.hf
    s = sentence("echolocation", "The bat uses echolocation to hunt.")
    vectors, ids = minilm_task.word_vectors([s])
    assert tok.convert_ids_to_tokens(ids[0]) == ["echo", "##lo", "##cation"]
    enc = tok(s.sentence, return_tensors="pt")
    assert tok.convert_ids_to_tokens(enc.input_ids[0, 4:7]) == ["echo", "##lo", "##cation"]
    with torch.no_grad():
        hidden = hf(**enc, output_hidden_states=True).hidden_states
    assert vectors.shape == (1, 1 + hf.config.num_hidden_layers + 1, hf.config.hidden_size)
    for k, h in enumerate(hidden):
        assert torch.allclose(vectors[0, 1 + k], h[0, 4:7].mean(0), atol=1e-5), f"layer {k}"
    control = hf.get_input_embeddings()(enc.input_ids[0, 4:7]).mean(0)
    assert torch.allclose(vectors[0, 0], control, atol=1e-6)
    assert not torch.allclose(vectors[0, 1], control, atol=1e-3), "layer 0 adds position and token type"


def test_sense_gap_on_known_vectors():
    v = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
    assert sense_gap(v, ["a", "a", "b", "b"]) == pytest.approx((1.0, 1.0, 0.0))
    v = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    assert sense_gap(v, ["a", "a", "b", "b"]) == pytest.approx((-0.5, 0.0, 0.5))


def test_the_control_is_one_vector_per_word_so_its_gap_is_zero(minilm_task):
    """The word-piece embedding has no position and no context: identical vectors in every sentence, gap 0 (to
    float64 rounding); layer 0 (with position) and the last layer differ between sentences."""
    rows = select(read_sentences(SHIPPED), ["spring"], 4)
    vectors, _ = minilm_task.word_vectors(rows)
    control = vectors[:, 0]
    assert all(torch.equal(control[0], c) for c in control[1:])
    assert abs(sense_gap(control, [s.sense for s in rows])[0]) < 1e-12
    for k in (1, -1):
        assert not torch.allclose(vectors[0, k], vectors[1, k]), f"position {k} differs between sentences"
    assert sense_gap(vectors[:, -1], [s.sense for s in rows])[0] > 0


# ---- runs ----------------------------------------------------------------------------------------------------
def test_smoke_run_end_to_end(run_leedl):
    """Two words, three sentences per sense: metrics, results.json per word, heat maps and the line plot; the
    numbers of this small deterministic run pinned (MiniLM, no training)."""
    r = run_leedl(["task=contextual_embeddings", "debug=smoke", "threads=1"])
    assert r["status"] == "ok", r.get("error")
    m = r["metrics"]
    assert abs(m["test/sense_gap_control"]) < 1e-12 and abs(m["test/sense_gap_layer0"]) < 0.01
    assert m["test/sense_gap_last_bank"] > 0 and m["test/sense_gap_last_apple"] > 0
    assert m["test/sense_gap_last_bank"] == pytest.approx(0.1014, abs=2e-3)
    assert m["test/sense_gap_last_apple"] == pytest.approx(0.1594, abs=2e-3)
    assert m["test/sense_gap_last"] == m["test/sense_gap_layer6"] > m["test/sense_gap_layer1"]
    assert m["test/within_sense_sim_last"] - m["test/cross_sense_sim_last"] == pytest.approx(m["test/sense_gap_last"])
    run_dir = Path(r["run_dir"])
    saved = json.loads((run_dir / "results.json").read_text())["contextual_embeddings"]
    assert saved["layers"] == 6 and list(saved["words"]) == ["bank", "apple"]
    bank = saved["words"]["bank"]
    assert bank["pieces"] == ["bank"] and bank["same_pieces_everywhere"] and bank["senses"] == {"river": 3, "money": 3}
    assert len(bank["sense_gap_by_layer"]) == 7
    for name in ("similarity_bank.png", "similarity_apple.png", "sense_gap_vs_layer.png"):
        assert (run_dir / "plots" / name).stat().st_size > 5000, name


def test_runs_on_leedl_own_masked_lm_export(run_leedl, tmp_path):
    """An mlm_pretrain run's export (a BERT for masked LM + its tokenizer, Hugging Face format) is a backbone here:
    model.backbone=<dir>; the encoder inside is read, with that directory's tokenizer."""
    from leedl_cli.data.tokenizers import load_pretrained_tokenizer
    from leedl_cli.models.bert import Bert

    small = dict(num_hidden_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=64)
    torch.manual_seed(0)
    exported = Bert(backbone="minilm", pretrained=False, head="mlm", config_overrides=small).export(
        tmp_path / "hf_model", load_pretrained_tokenizer("minilm"))
    r = run_leedl(["task=contextual_embeddings", "debug=smoke", "threads=1", f"model.backbone={exported}"])
    assert r["status"] == "ok", r.get("error")
    saved = r["contextual_embeddings"]
    assert saved["layers"] == 2 and len(saved["sense_gap_by_layer"]) == 3
    assert abs(r["metrics"]["test/sense_gap_control"]) < 1e-12


@pytest.mark.slow
def test_minilm_preset_pinned(run_leedl):
    """experiment=contextual_embeddings (MiniLM, 140 sentences, 7 words): the last layer tells the senses apart
    for every word, the control gap is 0 and the gap grows from the first Transformer layer to the last."""
    r = run_leedl(["experiment=contextual_embeddings", "threads=1"])
    assert r["status"] == "ok", r.get("error")
    m = r["metrics"]
    assert m["test/sense_gap_last"] == pytest.approx(0.0963, abs=2e-3)
    assert m["test/sense_gap_layer1"] == pytest.approx(0.0422, abs=2e-3)
    assert m["test/sense_gap_last_min"] > 0 and m["test/sense_gap_last_low"] > 0
    assert abs(m["test/sense_gap_control"]) < 1e-12 and m["test/sense_gap_growth_low"] > 0
    assert len(r["contextual_embeddings"]["words"]) == 7
