"""model=gpt and task=lm_pretrain (ch. 5, section 5.3): a small GPT trained to predict the next token."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from leedl_cli.data.lm_text import LMTextDataModule, blocks_of
from leedl_cli.models.gpt import GPT


def test_gpt_is_causal_and_ties_embeddings():
    torch.manual_seed(0)
    model = GPT(vocab_size=50, d_model=32, num_layers=2, num_heads=2, d_ff=64, dropout=0.0, block_size=16).eval()
    assert model.lm_head.weight is model.embed.weight
    x = torch.randint(0, 50, (2, 10))
    y = x.clone()
    y[:, 6:] = torch.randint(0, 50, (2, 4))
    a, b = model(x), model(y)
    assert a.shape == (2, 10, 50)
    torch.testing.assert_close(a[:, :6], b[:, :6])          # the future does not change the past
    assert not torch.allclose(a[:, 6:], b[:, 6:])
    torch.testing.assert_close(model.next_token_logits(x), a[:, -1])
    untied = GPT(vocab_size=50, d_model=32, num_layers=1, num_heads=2, tie_embeddings=False,
                 positional_encoding="sinusoidal")
    assert untied.lm_head.weight is not untied.embed.weight
    assert sum(p.numel() for p in untied.parameters()) - sum(p.numel() for p in GPT(
        vocab_size=50, d_model=32, num_layers=1, num_heads=2, positional_encoding="sinusoidal").parameters()) == 50 * 32


def test_blocks_are_shifted_by_one():
    blocks = blocks_of(list(range(10)), 4)
    assert blocks[0] == {"input_ids": [0, 1, 2, 3], "labels": [1, 2, 3, 4]}
    assert blocks[1] == {"input_ids": [4, 5, 6, 7], "labels": [5, 6, 7, 8]}
    assert blocks[-1] == {"input_ids": [8], "labels": [9]}


def test_corpus_splits_and_vocabulary(tmp_path):
    from ch5_gpt_files import write_repetitive_text

    corpus = tmp_path / "text.txt"
    write_repetitive_text(corpus, lines=200)
    dm = LMTextDataModule(corpus=str(corpus), block_size=16, vocab_size=100)
    dm.setup()
    assert set(dm.splits) == {"train", "val", "test"} and all(dm.splits.values())
    assert sum(dm.token_counts.values()) == 200 * 8      # 7 tokens per line + [EOS]
    assert dm.decode(dm.encode("The cat sat on the mat .")) == "the cat sat on the mat."   # lowercased; WordPiece tidies " ."
    spec = dm.provides()
    assert (spec.vocab_size, spec.block_size, spec.eos_id) == (len(dm.vocab), 16, dm.vocab.token_to_id("[EOS]"))
    assert spec.decode(spec.encode("the cat sat")) == "the cat sat"
    from leedl_cli.contract import contract_problems
    from leedl_cli.tasks.lm import LanguageModelPretraining

    assert contract_problems(LMTextDataModule, GPT, LanguageModelPretraining) == [], "every provided key is used"
    assert GPT.config_problems({"d_model": 30, "num_heads": 4}) == [
        "num_heads=4: d_model=30 is not divisible by num_heads"]


def test_config_composes(compose_cfg):
    cfg = compose_cfg(["task=lm_pretrain"])
    assert cfg.model.name == "gpt" and cfg.task.data.corpus == "squad" and cfg.trainer.val_check_interval == 50


def test_smoke_writes_curve_plot_and_samples(run_leedl, tmp_path):
    from test_bert_smoke import write_squad

    write_squad(tmp_path / "data")
    r = run_leedl(["task=lm_pretrain", "debug=smoke", f"data_dir={tmp_path}/data", "seed=0"])
    assert r["status"] == "ok", r.get("error")
    run_dir = Path(r["run_dir"])
    assert [c["step"] for c in r["val_ppl_curve"]] == [1, 2, 3]
    assert (run_dir / "plots" / "perplexity.png").is_file()
    samples = (run_dir / "samples.txt").read_text()
    for name in ("greedy", "top-k", "nucleus"):
        assert f"== {name}" in samples
    assert samples.count(" || ") == 15          # 5 prompts x (greedy 1 + top-k 1 + nucleus 1)
    assert set(r["sample_diversity"]) == {"greedy", "top-k (k=40)", "nucleus (p=0.9)"}
    assert r["metrics"]["test/ppl"] == pytest.approx(torch.tensor(r["metrics"]["test/loss"]).exp().item(), rel=1e-4)


def test_gpt_learns_a_repetitive_corpus(run_leedl, tmp_path):
    """Pinned: 4 sentences repeated in a cycle (a vocabulary of ~50 entries); in 120 steps the validation
    perplexity falls from ~14 to 1.72 (seed 0): the model has learned the sentences and their order."""
    from ch5_gpt_files import write_repetitive_text

    corpus = tmp_path / "text.txt"
    write_repetitive_text(corpus, lines=400)
    r = run_leedl(["task=lm_pretrain", f"task.data.corpus={corpus}", "task.data.block_size=32",
                   "task.data.batch_size=16", "task.data.vocab_size=100", "model.d_model=32", "model.num_layers=2",
                   "model.num_heads=2", "model.d_ff=64", "model.dropout=0.0", "trainer.max_epochs=20",
                   "trainer.val_check_interval=20", "logger=none", "callbacks=none", "seed=0",
                   "trainer.enable_progress_bar=false", "trainer.deterministic=true", "optimizer.lr=3e-3",
                   "task.module.max_new_tokens=16"])
    assert r["status"] == "ok", r.get("error")
    curve = [c["val_ppl"] for c in r["val_ppl_curve"]]
    assert curve[-1] < curve[0] / 2 and curve == sorted(curve, reverse=True), curve
    assert r["metrics"]["val/ppl"] < 2.0, curve     # measured 1.72 (seed 0)
    greedy = (Path(r["run_dir"]) / "samples.txt").read_text().split("== top-k")[0]
    continuations = [line.split(" || ")[1] for line in greedy.splitlines() if " || " in line]
    words = set((corpus.read_text()).replace(".", " . ").split())
    assert len(continuations) == 5 and all(c.strip() for c in continuations), greedy
    assert all(w in words for c in continuations for w in c.replace(".", " . ").split()), greedy
    json.dumps(r)
