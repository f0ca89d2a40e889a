"""Chapter 5 beyond one task: BERT vs random init across tasks, own masked-LM pretraining, the full SQuAD preset,
cross-lingual QA with a multilingual backbone (a tiny random one built here), re-scorable QA predictions.

Everything runs on files the tests write (no mirror, no network).
"""
from __future__ import annotations

import gzip
import json

import pytest
import torch
from test_bert_smoke import FILLER, write_squad, write_sst2
from test_configs import options

from leedl_cli.errors import LeedlError
from leedl_cli.validate import problems


def _ok(res):
    assert res["status"] == "ok", res.get("error")
    return res


# ---- presets and budgets ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("budget", options("budget"))
def test_every_budget_composes_and_selects_its_task(compose_cfg, budget):
    cfg = compose_cfg([f"+budget={budget}"])
    assert cfg.task.name == budget and cfg.model.name == "bert"
    assert problems(cfg) == []
    data = cfg.task.data
    limit = data.get("max_train_examples") or data.get("max_train_sentences")
    assert limit is not None and limit <= 2000 and cfg.trainer.max_epochs <= 2


def test_pretrain_vs_random_sweeps_four_tasks_two_inits_three_seeds(compose_cfg):
    cfg = compose_cfg(["experiment=pretrain_vs_random"])
    params = cfg.hydra.sweeper.params
    assert sorted(params["budget"].split(",")) == ["bert_squad", "nli", "pos_tagging", "sentiment"]
    assert params["model.pretrained"] == "true,false" and params.seed == "0,1,2"
    assert compose_cfg(["experiment=pretrain_vs_random", "budget=nli"]).task.name == "nli", "one task: budget=nli"
    tasks = {row.where.task for row in cfg.report.book}
    assert tasks == {"bert_squad", "nli", "pos_tagging", "sentiment"}
    assert all(row.check == "True > False" and row.by == "model.pretrained" for row in cfg.report.book)


def test_bert_squad_full_uses_every_training_question_and_long_windows(compose_cfg):
    cfg = compose_cfg(["experiment=bert_squad_full"])
    d = cfg.task.data
    assert cfg.task.name == "bert_squad" and (d.max_length, d.stride) == (384, 128)
    assert d.max_train_examples is None and cfg.trainer.max_epochs == 2
    assert compose_cfg(["task=bert_squad"]).task.data.max_train_examples == 2000, "the default stays quick"


def test_own_pretraining_presets_chain(compose_cfg):
    mlm = compose_cfg(["experiment=own_pretraining_mlm"])
    assert mlm.task.name == "mlm_pretrain" and mlm.model.name == "bert_small"
    assert set(mlm.task.data.corpus.split("+")) == {"sst2", "squad", "multi30k"}
    fine = compose_cfg(["experiment=own_pretraining"])
    assert fine.model.name == "bert_small"
    assert fine.model.backbone == f"{mlm.hydra.run.dir}/hf_model", "step 2 reads what step 1 writes"
    assert fine.hydra.sweeper.params["model.pretrained"] == "true,false"
    # the setting measured to pay off (README): own 8k WordPiece vocabulary, 40 epochs, mean pooling
    assert mlm.task.data.vocab_size == 8000 and mlm.trainer.max_epochs == 40
    assert fine.model.pooling == "mean"


# ---- own pretraining: corpus, masked-LM head, the exported backbone ------------------------------------------
def write_multi30k(folder, n: int = 200) -> None:
    (folder / "multi30k").mkdir(parents=True, exist_ok=True)
    lines = [" ".join(FILLER[(i + k) % len(FILLER)] for k in range(6)) + f" number {i} ." for i in range(n)]
    with gzip.open(folder / "multi30k" / "train.en.gz", "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def test_corpus_concatenation_and_multi30k(tmp_path):
    from leedl_cli.data.text import read_corpus

    write_sst2(tmp_path, n_train=30)
    write_multi30k(tmp_path, n=20)
    both = read_corpus("sst2+multi30k", str(tmp_path))
    assert len(both) == 30 + 20 and both[-1].endswith("number 19 .")
    with pytest.raises(LeedlError, match="multi30k"):
        read_corpus("sst2+nothing", str(tmp_path))


def test_masked_positions_only_head_gives_the_full_models_loss():
    from leedl_cli.models.bert import Bert
    from leedl_cli.tasks.mlm import MaskedLMPretraining

    torch.manual_seed(0)
    model = Bert(backbone="minilm", pretrained=False, head="mlm", dropout=0.0,
                 config_overrides=dict(num_hidden_layers=1, hidden_size=32, num_attention_heads=2, intermediate_size=64))
    task = MaskedLMPretraining(model)
    ids = torch.randint(1000, 2000, (3, 12))
    labels = torch.full_like(ids, -100)
    labels[:, 4], labels[2, 9] = ids[:, 4], 1234
    chosen = labels != -100
    fast = torch.nn.functional.cross_entropy(task._masked_logits({"input_ids": ids, "attention_mask": torch.ones_like(ids)},
                                                                 chosen), labels[chosen])
    full = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels).loss
    assert fast.item() == pytest.approx(full.item(), rel=1e-5)


@pytest.mark.slow
def test_own_pretrained_small_bert_is_a_backbone_for_sentiment_and_nli(run_leedl, tmp_path):
    from test_nli import write_snli

    data = tmp_path / "data"
    write_sst2(data)
    write_multi30k(data)
    write_snli(data)
    mlm = _ok(run_leedl(["task=mlm_pretrain", "debug=smoke", "seed=0", "threads=1", f"data_dir={data}",
                         "task.data.corpus=sst2+multi30k"], name="mlm"))
    backbone = mlm["hf_model"]
    from leedl_cli.models.bert import Bert

    saved = Bert(backbone=backbone, head="mlm").hf.bert.embeddings.word_embeddings.weight
    loaded = Bert(backbone=backbone, pretrained=True, head="sequence_classification",
                  config_overrides={"hidden_size": 128, "num_hidden_layers": 2})
    assert torch.equal(loaded.hf.bert.embeddings.word_embeddings.weight, saved), "model=bert_small loads the weights"
    with pytest.raises(LeedlError, match="hidden_size"):
        Bert(backbone=backbone, pretrained=True, config_overrides={"hidden_size": 64})
    for task in ("sentiment", "nli"):
        for pretrained in ("true", "false"):
            res = _ok(run_leedl([f"task={task}", "model=bert_small", f"model.backbone={backbone}",
                                 f"model.pretrained={pretrained}", "debug=smoke", "seed=0", "threads=1",
                                 f"data_dir={data}"], name=f"{task}-{pretrained}"))
            assert 0.0 <= res["metrics"]["test/acc"] <= 1.0


def test_mlm_pretrain_learns_its_own_wordpiece_vocabulary_and_fine_tuning_uses_it(run_leedl, tmp_path):
    """task.data.vocab_size=N: BERT's recipe of a vocabulary learned from the pretraining corpus; the exported
    directory carries it, and a fine-tuning run with that backbone tokenizes with it (not MiniLM's 30,522)."""
    from transformers import AutoConfig, AutoTokenizer

    data = tmp_path / "data"
    write_sst2(data)
    write_multi30k(data)
    mlm = _ok(run_leedl(["task=mlm_pretrain", "debug=smoke", "seed=0", "threads=1", f"data_dir={data}",
                         "task.data.corpus=sst2+multi30k", "task.data.vocab_size=300"], name="mlm-vocab"))
    backbone = mlm["hf_model"]
    tok = AutoTokenizer.from_pretrained(backbone)
    assert len(tok) <= 300 and AutoConfig.from_pretrained(backbone).vocab_size == len(tok)
    enc = tok("a good film", "a dog runs")
    words = tok.convert_ids_to_tokens(enc["input_ids"])
    assert words[0] == "[CLS]" and words.count("[SEP]") == 2 and words[-1] == "[SEP]"
    assert enc["token_type_ids"][-1] == 1 and enc["token_type_ids"][0] == 0, "the second sentence is segment B"
    assert tok.mask_token_id is not None and tok.pad_token_id == 0
    res = _ok(run_leedl(["task=sentiment", "model=bert_small", f"model.backbone={backbone}", "model.pretrained=true",
                         "debug=smoke", "seed=0", "threads=1", f"data_dir={data}"], name="sentiment-own-vocab"))
    assert res["parameters"] < 1_000_000, "the 300-entry vocabulary, not MiniLM's 30,522 x 128 embedding"


def test_mean_pooling_reads_the_mean_of_the_real_tokens():
    """model.pooling=mean: the classifier sees the mean of the last layer's vectors of the real tokens, so padding
    changes nothing; cls (the default) is BERT's own head. Other heads refuse it."""
    from leedl_cli.models.bert import Bert

    torch.manual_seed(0)
    small = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}
    model = Bert(backbone="minilm", pretrained=False, head="sequence_classification", config_overrides=small,
                 pooling="mean").eval()
    ids = torch.tensor([[101, 2204, 3185, 102]])
    padded = torch.tensor([[101, 2204, 3185, 102, 0, 0]])
    with torch.no_grad():
        a = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
        b = model(input_ids=padded, attention_mask=(padded != 0).long()).logits
        hidden = model.hf.bert(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
        by_hand = model.hf.classifier(hidden.mean(1))
    assert torch.allclose(a, b, atol=1e-5) and torch.allclose(a, by_hand, atol=1e-5)
    model.pooling = "cls"
    with torch.no_grad():
        assert not torch.allclose(model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits, a)
    with pytest.raises(LeedlError, match="sentence classification"):
        Bert(backbone="minilm", pretrained=False, head="qa", config_overrides=small, pooling="mean")


@pytest.mark.parametrize("override,message", [
    (["task=sentiment", "model.pooling=max"], "model.pooling=max: expected one of cls, mean"),
    (["task=bert_squad", "model.pooling=mean"], "model.pooling=mean: expected cls with head=qa"),
    (["task=sentiment", "model.dropout=1.5"], "model.dropout=1.5: expected"),
    (["task=bert_squad", "task.data.stride=100"], "task.data.stride=100: expected well below max_length=192"),
    (["task=mlm_pretrain", "task.data.mask_probability=0"], "task.data.mask_probability=0: expected"),
    (["task=sentiment", "+model.num_classes=3"], "model.num_classes: provided by the data of task=sentiment"),
])
def test_bert_options_are_refused_before_the_run(compose_cfg, override, message):
    found = problems(compose_cfg(override))
    assert any(message in p for p in found), found


# ---- QA: re-scorable predictions, cross-lingual path ---------------------------------------------------------
def test_qa_predictions_rescore_to_the_reported_f1(run_leedl, tmp_path):
    from leedl_cli.analysis.squad_metrics import squad_scores
    from leedl_cli.data.squad import examples_of, read_squad

    write_squad(tmp_path / "data")
    res = _ok(run_leedl(["task=bert_squad", "debug=smoke", "seed=0", "threads=1", f"data_dir={tmp_path / 'data'}"]))
    preds = json.loads((tmp_path / "run" / "predictions_test.json").read_text())
    gold = {e["id"]: e["answers"]["text"] for e in examples_of(read_squad(tmp_path / "data" / "squad" / "dev-v1.1.json"))
            if e["id"] in preds}
    scores = squad_scores(preds, gold)
    assert scores["f1"] == pytest.approx(res["metrics"]["test/f1"], abs=1e-4)
    assert scores["exact_match"] == pytest.approx(res["metrics"]["test/em"], abs=1e-4)


ZH_CITIES = ["北京", "上海", "台北", "香港", "廣州", "南京"]
EN_CITIES = ["Paris", "Rome", "Berlin", "Madrid", "Vienna", "Prague"]


def tiny_multilingual_backbone(folder) -> str:
    """A randomly initialised tiny BERT (2 layers, hidden 32) with a WordPiece vocabulary holding English words and
    CJK characters, saved as a Hugging Face directory: what `model.backbone=bert-base-multilingual-cased` gives
    with internet, 1,000x smaller."""
    from transformers import BertConfig, BertForQuestionAnswering, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    words = sorted({w.lower() for w in " ".join(FILLER + EN_CITIES).split()} |
                   set("where does museum stand near old river it built was in when number ? . , 0123456789".split()))
    cjk = sorted(set("".join(ZH_CITIES) + "博物館位於在哪裡河的旁邊建於年是號。？，"))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words + cjk + [f"##{c}" for c in "0123456789"]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tok = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True, tokenize_chinese_chars=True)
    tok.save_pretrained(folder)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=256)
    torch.manual_seed(0)
    BertForQuestionAnswering(config).save_pretrained(folder)
    return str(folder)


def write_zh_squad(path, n_articles: int = 3) -> None:
    """XQuAD-zh / DRCD format (SQuAD v1.1 JSON, Chinese text, answer_start in characters)."""
    data = []
    for a in range(n_articles):
        paragraphs = []
        for p in range(2):
            city = ZH_CITIES[(a * 2 + p) % len(ZH_CITIES)]
            context = f"{a}{p}號博物館建於{1900 + a}年。它位於{city}，在河的旁邊。"
            qas = [{"id": f"zh{a}-{p}", "question": f"{a}{p}號博物館在哪裡？",
                    "answers": [{"text": city, "answer_start": context.index(city)}]}]
            paragraphs.append({"context": context, "qas": qas})
        data.append({"title": f"文章{a}", "paragraphs": paragraphs})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": "1.1", "data": data}, ensure_ascii=False), encoding="utf-8")


def test_cross_lingual_qa_path_train_english_test_chinese(run_leedl, tmp_path):
    """Fine-tune on English SQuAD-format files, test on Chinese ones (XQuAD-zh file, and DRCD from data_dir):
    the multilingual-BERT path of the book with a tiny random multilingual backbone."""
    from leedl_cli.data.squad import examples_of, read_squad

    backbone = tiny_multilingual_backbone(tmp_path / "mbert")
    write_squad(tmp_path / "en")
    write_zh_squad(tmp_path / "xquad.zh.json")
    write_zh_squad(tmp_path / "data" / "drcd" / "DRCD_dev.json", n_articles=4)
    common = ["task=bert_squad", "debug=smoke", "seed=0", "threads=1", f"model.backbone={backbone}",
              f"task.data.train_file={tmp_path / 'en' / 'squad' / 'dev-v1.1.json'}"]
    res = _ok(run_leedl([*common, f"task.data.dev_file={tmp_path / 'xquad.zh.json'}"], name="xquad"))
    assert res["data_split"]["how"].startswith("train/val = dev-v1.1.json") and res["data_split"]["test_questions"] == 6
    preds = json.loads((tmp_path / "xquad" / "predictions_test.json").read_text())
    contexts = {e["id"]: e["context"] for e in examples_of(read_squad(tmp_path / "xquad.zh.json"))}
    assert set(preds) == set(contexts)
    assert all(p in contexts[q] for q, p in preds.items()), "answers are spans of the Chinese passages"
    assert 0.0 <= res["metrics"]["test/f1"] <= 100.0
    drcd = _ok(run_leedl([*common, "task.data.dataset=drcd", f"data_dir={tmp_path / 'data'}"], name="drcd"))
    assert drcd["data_split"]["test_questions"] == 8


def test_report_groups_boolean_sweeps_recorded_as_true_false(tmp_path):
    """Hydra's sweeper records `model.pretrained=true` as `True`: the report's checks find the groups either way."""
    from leedl_cli import report

    for i, (pre, acc) in enumerate([("True", 0.80), ("True", 0.81), ("False", 0.50), ("False", 0.52)]):
        d = tmp_path / str(i)
        d.mkdir()
        (d / "results.json").write_text(json.dumps({
            "status": "ok", "seed": i, "overrides": ["budget=sentiment", f"model.pretrained={pre}", f"seed={i}"],
            "choices": {"task": "sentiment"}, "metrics": {"test/acc": acc}, "report": {"book": [
                {"claim": "c", "metric": "test/acc", "where": {"task": "sentiment"}, "by": "model.pretrained",
                 "check": check} for check in ("true > false", "True > False", "false > true")]}}))
    runs = report.load_runs(tmp_path)
    verdicts = [c["verdict"] for c in report.book_rows(runs, report.report_config(runs))]
    assert verdicts == ["holds", "holds", "does not hold"]
