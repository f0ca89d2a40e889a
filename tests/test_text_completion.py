"""task=text_completion (ch. 4, sections 4.8.3-4.8.4): a causal LM continues prompts; repetition, distinct-n and
perplexity against the human continuations; beam search for a decoder-only model; the decoding_open_vs_fixed preset."""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch

from leedl_cli.analysis.text_metrics import distinct_n, mean_repetition, perplexity, repetition, words
from leedl_cli.data.completion_prompts import CompletionPromptsDataModule, first_sentence_split, half_split
from leedl_cli.decoding import DecodeSettings, decode_prompts
from leedl_cli.errors import DataNotFoundError

PARAGRAPHS = [
    "The river flows through the old town. Its bridges were built in the twelfth century and still carry traffic.",
    "Marie Curie was born in Warsaw in 1867. She moved to Paris to study physics and chemistry at the Sorbonne.",
    "The museum opened to the public in 1901. It holds paintings, coins and a large collection of maps.",
    "A single sentence with no second one",
    "Rain fell for three days. The harvest was late that year, and the farmers waited for the sun to return.",
    "The library has two reading rooms. One is for students, the other for visitors who come from abroad.",
    "The team won the cup in 1990. Their coach said it was the best season the club had ever played.",
    "Owls hunt at night. Their soft feathers let them fly almost without a sound over the fields.",
]


def write_squad(folder: Path) -> Path:
    """A SQuAD v1.1-format dev-v1.1.json whose paragraphs are PARAGRAPHS (no questions needed here)."""
    data = [{"title": f"Article_{i}", "paragraphs": [{"context": p, "qas": []}]} for i, p in enumerate(PARAGRAPHS)]
    (folder / "squad").mkdir(parents=True, exist_ok=True)
    (folder / "squad" / "dev-v1.1.json").write_text(json.dumps({"version": "1.1", "data": data}), encoding="utf-8")
    return folder


def tiny_llama(vocab: int, seed: int = 0, scale: float = 1.0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
                         tie_word_embeddings=False)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(scale)   # sharper next-token distributions: beam and greedy part ways
    return model


# ---- text metrics on hand-made texts ------------------------------------------------------------------------------
def test_repetition_counts_repeated_ngrams_within_a_text():
    assert repetition("a b c d e f".split(), 4) == 0.0
    # a b c d a b c d: 4-grams abcd bcda cdab dabc abcd -> one of five repeats an earlier one
    assert repetition("a b c d a b c d".split(), 4) == pytest.approx(1 / 5)
    # a loop: "x y" eight times -> 13 4-grams, only 2 distinct
    assert repetition(("x y " * 8).split(), 4) == pytest.approx(11 / 13)
    assert repetition(["a", "b"], 4) == 0.0   # shorter than n: no 4-gram
    assert mean_repetition([["a"] * 5, list("abcde")], 4) == pytest.approx((1 / 2 + 0) / 2)
    assert mean_repetition([], 4) == 0.0


def test_distinct_n_and_words_and_perplexity():
    a, b = words("The cat sat."), words("the cat ran!")
    assert a == ["the", "cat", "sat", "."] and b == ["the", "cat", "ran", "!"]
    assert distinct_n([a, b], 1) == pytest.approx(6 / 8)        # the, cat, sat, ., ran, !
    assert distinct_n([a, b], 2) == pytest.approx(5 / 6)        # 6 bigrams, (the cat) twice
    assert distinct_n([["x"]], 2) == 0.0
    assert words("It's 4.") == ["it", "'", "s", "4", "."]
    assert perplexity(0.0, 10) == 1.0
    assert perplexity(10 * 2.0, 10) == pytest.approx(torch.tensor(2.0).exp().item())


# ---- prompts ---------------------------------------------------------------------------------------------------------
def test_prompt_splits():
    assert first_sentence_split("It rained. Then the sun came out.") == ("It rained.", "Then the sun came out.")
    assert first_sentence_split('He said "Stop." And it stopped.') == ('He said "Stop."', "And it stopped.")
    assert first_sentence_split("Only one sentence here") is None
    assert first_sentence_split("One. ") is None
    assert half_split("a b c d e") == ("a b", "c d e")
    assert half_split("too short .") is None


def test_squad_prompts_and_fixed_subset(tmp_path):
    write_squad(tmp_path)
    dm = CompletionPromptsDataModule(data_dir=str(tmp_path))
    dm.setup()
    assert len(dm.examples) == len(PARAGRAPHS) - 1                 # the one-sentence paragraph is left out
    first = dm.examples[0]
    assert first["prompt"] == "The river flows through the old town."
    assert first["continuation"].startswith("Its bridges were built")
    subset = CompletionPromptsDataModule(data_dir=str(tmp_path), max_prompts=3)
    subset.setup()
    again = CompletionPromptsDataModule(data_dir=str(tmp_path), max_prompts=3)
    again.setup()
    assert subset.examples == again.examples and len(subset.examples) == 3
    assert [e["index"] for e in subset.examples] == sorted(e["index"] for e in subset.examples)
    lengths = [len(p) for b in subset.test_dataloader() for p in b["prompt"]]
    assert lengths == sorted(lengths)                               # batches of similar lengths
    assert all(v is None for v in vars(dm.provides()).values())     # causal_lm brings its own tokenizer


def test_sst2_prompts_and_missing_data(tmp_path):
    (tmp_path / "sst2").mkdir()
    (tmp_path / "sst2" / "dev.tsv").write_text("sentence\tlabel\na gentle , moving and funny film\t1\nbad\t0\n")
    dm = CompletionPromptsDataModule(source="sst2", data_dir=str(tmp_path))
    dm.setup()
    assert [(e["prompt"], e["continuation"]) for e in dm.examples] == [("a gentle ,", "moving and funny film")]
    with pytest.raises(DataNotFoundError, match="dev.tsv"):
        CompletionPromptsDataModule(source="sst2", data_dir=str(tmp_path / "nowhere")).setup()


# ---- beam search for a causal LM -----------------------------------------------------------------------------------
def all_scores(hf, prompt: list[int], conts: list[tuple]) -> dict[tuple, float]:
    """sum log p(cont | prompt) of every continuation, by one forward pass over all of them."""
    with torch.no_grad():
        logp = torch.log_softmax(hf(input_ids=torch.tensor([prompt + list(c) for c in conts])).logits.float(), -1)
    return {c: sum(logp[i, len(prompt) - 1 + j, t].item() for j, t in enumerate(c)) for i, c in enumerate(conts)}


def test_causal_lm_beam_search_finds_the_brute_force_best():
    """Tokens 1..4 (0 is eos, never chosen at a fixed length), 3 new tokens: a beam of 4^2 = 16 keeps every
    2-token prefix, so it must find the best of all 4^3 continuations; beam 1 is greedy and no better."""
    vocab, steps = 5, 3
    hf = tiny_llama(vocab, seed=0, scale=8.0)
    prompts = [[1, 2, 3], [4], [2, 4], [3, 3]]
    beam = decode_prompts(hf, prompts, DecodeSettings(strategy="beam", beam_size=(vocab - 1) ** (steps - 1)), steps, 0)
    greedy = decode_prompts(hf, prompts, DecodeSettings(strategy="greedy"), steps, 0)
    assert decode_prompts(hf, prompts, DecodeSettings(strategy="beam", beam_size=1), steps, 0) == greedy
    parted = 0
    for prompt, got, g in zip(prompts, beam, greedy):
        scores = all_scores(hf, prompt, list(itertools.product(range(1, vocab), repeat=steps)))
        best = max(scores, key=scores.get)
        assert got == list(best)
        assert scores[tuple(got)] >= scores[tuple(g)] - 1e-6
        parted += got != g
    assert parted >= 1, "the test model should have a prompt where greedy misses the best continuation"


# ---- the task ---------------------------------------------------------------------------------------------------------
def test_config_composes(compose_cfg):
    from leedl_cli.validate import problems

    cfg = compose_cfg(["task=text_completion", "+decoding=nucleus"])
    assert cfg.model.name == "causal_lm" and cfg.task.fit is False and cfg.task.test is True
    assert cfg.task.module.decode == "sampling" and cfg.task.module.top_p == 0.9
    assert cfg.task.data.source == "squad" and cfg.task.module.max_new_tokens == 40
    assert problems(cfg) == []
    bad = problems(compose_cfg(["task=text_completion", "task.top_p=0"]))
    assert any("task.top_p=0" in p for p in bad), bad


@pytest.mark.parametrize("task, model, weights", [("translation", "transformer", "/runs/translation"),
                                                  ("text_completion", "causal_lm", None)])
def test_preset_gives_each_task_its_weights(compose_cfg, task, model, weights):
    from leedl_cli.validate import problems

    cfg = compose_cfg(["experiment=decoding_open_vs_fixed", f"task={task}", "+decoding=beam5", "seed=0",
                       "task.weights_of.translation=/runs/translation"])
    assert cfg.model.name == model and cfg.task.fit is False
    assert cfg.task.module.weights_from == weights
    assert cfg.task.module.decode == "beam" and cfg.task.module.beam_size == 5
    assert problems(cfg) == []


def test_preset_reads_as_a_book_preset():
    from leedl_cli.book.presets import read_presets

    [preset] = read_presets(names=["decoding_open_vs_fixed"])
    assert preset.section == "4.8.3" and preset.runs == 10
    assert set(preset.tasks) == {"translation", "text_completion"}
    assert preset.missing == ["task.weights_of.translation"]
    assert len(preset.claims) >= 8


def test_smoke_end_to_end(run_leedl, tmp_path):
    """debug=smoke with the tiny random causal LM on written SQuAD paragraphs: the saved continuations give back
    the logged metrics; every continuation has exactly max_new_tokens tokens."""
    from leedl_cli.analysis.text_metrics import distinct_n as dn

    write_squad(tmp_path / "data")
    r = run_leedl(["task=text_completion", "debug=smoke", f"data_dir={tmp_path}/data", "+decoding=beam5", "seed=0"])
    assert r["status"] == "ok", r.get("error")
    m, run_dir = r["metrics"], Path(r["run_dir"])
    rows = [json.loads(line) for line in (run_dir / "continuations.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and all(row["tokens"] == 8 for row in rows)
    assert [row["index"] for row in rows] == sorted(row["index"] for row in rows)
    gen = [words(row["continuation"]) for row in rows]
    assert m["test/distinct_2"] == pytest.approx(dn(gen, 2))
    assert m["test/repetition_4"] == pytest.approx(mean_repetition(gen, 4))
    assert m["test/ppl"] == pytest.approx(perplexity(sum(x["nll"] for x in rows), 6 * 8), rel=1e-3)
    human = [words(row["human"]) for row in rows]
    assert m["test/human_distinct_1"] == pytest.approx(dn(human, 1))
    assert r["decode"]["strategy"] == "beam" and r["text_completion"]["prompts"] == 6


def test_weights_from_is_refused_with_the_shipped_model(run_leedl, tmp_path):
    write_squad(tmp_path / "data")
    r = run_leedl(["task=text_completion", "debug=smoke", f"data_dir={tmp_path}/data",
                   "task.module.weights_from=/some/run"])
    assert r["status"] == "failed" and "weights_from is for model=gpt" in r["error"]


def test_gpt_reads_its_own_corpus(run_leedl, compose_cfg, tmp_path):
    """model=gpt (random weights here) through the vocabulary of a text corpus: prompts from its test split."""
    assert compose_cfg(["task=text_completion", "model=gpt"]).task.data.lm_corpus == "squad"   # lm_pretrain's default
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(PARAGRAPHS * 5) + "\n", encoding="utf-8")
    r = run_leedl(["task=text_completion", "debug=smoke", "model=gpt", "~model.backbone", "model.d_model=16",
                   "model.num_layers=1", "model.num_heads=2", "model.d_ff=32", "seed=0", f"task.data.lm_corpus={corpus}",
                   "task.data.lm_vocab_size=200", "+decoding=top_k"])
    assert r["status"] == "ok", r.get("error")
    rows = [json.loads(line) for line in (Path(r["run_dir"]) / "continuations.jsonl").read_text().splitlines()]
    assert rows and all(row["tokens"] == 8 for row in rows)
    assert all(any(p.startswith(row["prompt"] + " ") for p in PARAGRAPHS) for row in rows)   # first sentences
    assert r["metrics"]["test/ppl"] > 1


def test_pinned_small_run(run_leedl, tmp_path):
    """The tiny random causal LM, nucleus sampling with decode_seed 0 on the written paragraphs: pinned numbers
    (a random model: its perplexity is near its vocabulary's 30,522; 59 of the 60 bigrams distinct). ~7 s."""
    write_squad(tmp_path / "data")
    r = run_leedl(["task=text_completion", "debug=smoke", f"data_dir={tmp_path}/data", "+decoding=nucleus",
                   "seed=0", "trainer.limit_test_batches=null", "task.module.max_new_tokens=12"])
    assert r["status"] == "ok", r.get("error")
    m = r["metrics"]
    assert r["text_completion"]["prompts"] == 6
    assert m["test/distinct_2"] == pytest.approx(PINNED["distinct_2"], abs=1e-4)
    assert m["test/ppl"] == pytest.approx(PINNED["ppl"], rel=1e-3)
    assert m["test/human_ppl"] == pytest.approx(PINNED["human_ppl"], rel=1e-3)


PINNED = {"distinct_2": 59 / 60, "ppl": 30134.72, "human_ppl": 29727.79}
