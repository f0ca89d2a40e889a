"""task=pos_tagging: CoNLL-U in and out, every model end to end on written files, a pinned small run."""
from __future__ import annotations

import gzip
import random

import pytest
from conftest import data_available

LEXICON = {
    "DET": ["the", "a", "this", "every"], "ADJ": ["big", "red", "quiet", "happy", "old"],
    "NOUN": ["dog", "house", "river", "teacher", "idea", "garden"], "VERB": ["sees", "likes", "finds", "paints"],
    "ADP": ["in", "near", "under"], "PUNCT": [".", "!"], "PROPN": ["Anna", "Paris", "Bob"],
    "ADV": ["quickly", "slowly", "often"],
}
TEMPLATES = [["DET", "ADJ", "NOUN", "VERB", "DET", "NOUN", "PUNCT"],
             ["PROPN", "VERB", "DET", "NOUN", "ADP", "PROPN", "PUNCT"],
             ["DET", "NOUN", "ADV", "VERB", "DET", "ADJ", "NOUN", "ADP", "DET", "NOUN", "PUNCT"]]


def conllu_sentences(n: int, seed: int) -> str:
    rng = random.Random(seed)
    blocks = []
    for s in range(n):
        tags = rng.choice(TEMPLATES)
        words = [rng.choice(LEXICON[t]) for t in tags]
        words[0] = words[0].capitalize()
        lines = [f"# sent_id = s{seed}-{s}", f"# text = {' '.join(words)}"]
        if s % 5 == 0:                                  # a multi-word token line is not tagged
            lines.append(f"1-2\t{words[0]}{words[1]}\t_\t_\t_\t_\t_\t_\t_\t_")
        lines += [f"{i + 1}\t{w}\t{w.lower()}\t{t}\t_\t_\t0\tdep\t_\t_" for i, (w, t) in enumerate(zip(words, tags))]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n\n"


def write_ud(folder, n_train: int = 160, n_eval: int = 40) -> None:
    """en_ewt-ud-{train,dev,test}.conllu.gz in <folder>/ud-english-ewt, generated from a small grammar."""
    ud = folder / "ud-english-ewt"
    ud.mkdir(parents=True, exist_ok=True)
    for name, n, seed in (("train", n_train, 0), ("dev", n_eval, 1), ("test", n_eval, 2)):
        with gzip.open(ud / f"en_ewt-ud-{name}.conllu.gz", "wt", encoding="utf-8") as f:
            f.write(conllu_sentences(n, seed))


def data_dir_for(source: str, tmp_path) -> list[str]:
    if source == "mirror":
        if not data_available("ud-english-ewt"):
            pytest.skip("UD English EWT is not mirrored here (LEEDL_DATA_DIR / ../shared/data)")
        return []
    write_ud(tmp_path / "data")
    return [f"data_dir={tmp_path / 'data'}"]


def test_conllu_round_trip_replaces_only_the_upos_column(tmp_path):
    from leedl_cli.data.ud import read_conllu, write_conllu_with_upos

    src = tmp_path / "in.conllu"
    src.write_text(conllu_sentences(6, 3), encoding="utf-8")
    sents = read_conllu(src)
    assert len(sents) == 6 and all(len(s["words"]) == len(s["upos"]) for s in sents)
    assert sents[0]["words"][0][0].isupper() and sents[0]["sent_id"] == "s3-0"   # the 1-2 line is skipped
    predicted = [["X"] * len(s["words"]) for s in sents]
    out = write_conllu_with_upos(src, tmp_path / "out.conllu", predicted)
    back = read_conllu(out)
    assert [s["words"] for s in back] == [s["words"] for s in sents]
    assert all(t == "X" for s in back for t in s["upos"])
    a, b = src.read_text().splitlines(), out.read_text().splitlines()
    for x, y in zip(a, b):       # every other column and every comment / multi-word line is unchanged
        cx, cy = x.split("\t"), y.split("\t")
        assert cx[:3] + cx[4:] == cy[:3] + cy[4:]


def test_word_shape_and_missing_data_message(tmp_path):
    from leedl_cli.data.ud import UDDataModule, word_shape
    from leedl_cli.errors import DataNotFoundError

    assert len({word_shape(w) for w in ["dog", "Dog", "DOG", "3.5", ",", "e-mail"]}) == 6
    with pytest.raises(DataNotFoundError, match="en_ewt-ud-train.conllu"):
        UDDataModule(data_dir=str(tmp_path)).setup()


@pytest.mark.parametrize("model", ["self_attention", "rnn", "window_mlp", "bert"])
def test_pos_tagging_smoke_each_model(run_leedl, tmp_path, model):
    res = run_leedl(["task=pos_tagging", f"model={model}", "debug=smoke", "seed=0", "threads=1",
                     *data_dir_for("written", tmp_path)])
    assert res["status"] == "ok", res.get("error")
    m = res["metrics"]
    assert 0 <= m["test/f1"] <= 1 and 0 <= m["test/acc"] <= 1
    assert set(res["per_tag"]) >= {"NOUN", "VERB", "DET"} and res["per_tag"]["NOUN"]["support"] > 0
    from leedl_cli.data.ud import read_conllu

    preds = read_conllu(res["predictions"])
    assert len(preds) == 32 and all(t in res["per_tag"] for s in preds for t in s["upos"])
    if model == "self_attention":
        assert len(res["attention_plots"]) == 2 and all(p.endswith(".png") for p in res["attention_plots"])


@pytest.mark.slow
def test_pos_tagging_smoke_on_the_mirror(run_leedl, tmp_path):
    res = run_leedl(["task=pos_tagging", "debug=smoke", "seed=0", "threads=1", *data_dir_for("mirror", tmp_path)])
    assert res["status"] == "ok", res.get("error")


def test_self_attention_tagger_learns_the_written_grammar(run_leedl, tmp_path):
    """160 generated sentences, 6 epochs (seed 0): the test accuracy is far above the majority tag (NOUN ~25%)."""
    res = run_leedl(["task=pos_tagging", "model=self_attention", "seed=0", "threads=1", "logger=none",
                     "callbacks=none", "trainer.enable_progress_bar=false", "trainer.max_epochs=6",
                     "task.data.batch_size=16", "model.d_model=32", "model.d_ff=64", "model.num_heads=2",
                     *data_dir_for("written", tmp_path)])
    assert res["status"] == "ok", res.get("error")
    assert res["metrics"]["test/acc"] >= 0.95


@pytest.mark.slow
def test_self_attention_on_2000_ewt_sentences_pinned(run_leedl, tmp_path):
    """2,000 EWT training sentences, 3 epochs, seed 0: well above the majority tag on the real test set."""
    res = run_leedl(["task=pos_tagging", "model=self_attention", "seed=0", "logger=none", "callbacks=none",
                     "trainer.enable_progress_bar=false", "trainer.max_epochs=3", "task.data.max_train_sentences=2000",
                     *data_dir_for("mirror", tmp_path)])
    assert res["status"] == "ok", res.get("error")
    assert res["metrics"]["test/acc"] >= 0.80


def test_per_model_settings_are_config_layers_the_command_line_overrides(compose_cfg):
    """conf/task_model/pos_tagging/<model>.yaml: a pretrained backbone is fine-tuned with a small lr for 3 epochs
    and the token-classification head; from scratch the task file's 2e-3 and 15 epochs; the command line wins."""
    bert = compose_cfg(["task=pos_tagging", "model=bert"])
    assert (bert.optimizer.lr, bert.trainer.max_epochs, bert.model.head) == (1e-4, 3, "token_classification")
    assert compose_cfg(["task=pos_tagging", "model=bert_small"]).optimizer.lr == 5e-4
    scratch = compose_cfg(["task=pos_tagging", "model=self_attention"])
    assert (scratch.optimizer.lr, scratch.trainer.max_epochs, scratch.model.pooling) == (2e-3, 15, "none")
    cli = compose_cfg(["task=pos_tagging", "model=bert", "optimizer.lr=0.5", "trainer.max_epochs=7"])
    assert (cli.optimizer.lr, cli.trainer.max_epochs) == (0.5, 7)
    preset = compose_cfg(["experiment=tagger_comparison", "model=bert"])
    assert (preset.optimizer.lr, preset.trainer.max_epochs) == (1e-4, 3)
    budget = compose_cfg(["experiment=pretrain_vs_random", "budget=pos_tagging"])
    assert (budget.model.name, budget.optimizer.lr, budget.trainer.max_epochs) == ("bert", 1e-4, 2), "the budget wins"


def test_tagging_spec_gives_the_task_what_it_writes(tmp_path):
    """The data module's spec: UPOS names, sizes for the from-scratch models, the test words, a CoNLL-U writer."""
    from leedl_cli.data.ud import UPOS, UDDataModule, read_conllu

    write_ud(tmp_path / "data", n_train=20, n_eval=6)
    dm = UDDataModule(data_dir=str(tmp_path / "data"))
    spec = dm.provides()
    assert spec.label_names == tuple(UPOS) and spec.num_classes == 17 and spec.pad_token_id == 0
    assert spec.vocab_size == len(dm.vocab) and spec.word_features.char_vocab_size == len(dm.char_vocab)
    words = spec.test_words()
    assert len(words) == 6 and words[0][0][0].isupper()
    out = spec.write_test_conllu([["NOUN"] * len(w) for w in words], tmp_path / "pred.conllu")
    assert [s["upos"] for s in read_conllu(out)] == [["NOUN"] * len(w) for w in words]
    batch = spec.test_batch(0)
    assert batch["input_ids"].shape == (1, len(words[0])) and batch["char_ids"].shape[:2] == (1, len(words[0]))
