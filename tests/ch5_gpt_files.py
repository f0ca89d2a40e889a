"""Small files and models for the chapter 5 GPT tests (no mirror, no download): SNLI in the e-SNLI layout, a
repetitive text corpus, a tiny randomly initialised causal LM saved as a Hugging Face directory."""
from __future__ import annotations

import random

from test_bert_smoke import write_squad, write_sst2

SNLI_LABELS = ("entailment", "neutral", "contradiction")


def write_snli(folder, n_dev: int = 30, n_test: int = 24) -> None:
    """`snli/{s1,s2,labels}.{dev,test}`: tokenised sentences, one per line, line-aligned (the mirror's layout)."""
    rng = random.Random(0)
    d = folder / "snli"
    d.mkdir(parents=True, exist_ok=True)
    people = ["a man", "a woman", "two children", "a dog", "an old man"]
    for split, n in (("dev", n_dev), ("test", n_test)):
        s1, s2, labels = [], [], []
        for i in range(n):
            who = rng.choice(people)
            y = SNLI_LABELS[i % 3]
            s1.append(f"{who.capitalize()} is walking in the park . ")
            s2.append({"entailment": f"{who.capitalize()} is outside . ",
                       "neutral": f"{who.capitalize()} is walking to work . ",
                       "contradiction": f"{who.capitalize()} is sleeping at home . "}[y])
            labels.append(y)
        for name, lines in (("s1", s1), ("s2", s2), ("labels", labels)):
            (d / f"{name}.{split}").write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_repetitive_text(path, lines: int = 400) -> None:
    """A corpus a small GPT learns almost perfectly: a few fixed sentences, repeated in a cycle."""
    sentences = ["the cat sat on the mat .", "the dog ran in the park .", "a bird sang in the tree .",
                 "the sun rose over the hills ."]
    path.write_text("\n".join(sentences[i % len(sentences)] for i in range(lines)) + "\n", encoding="utf-8")


def save_tiny_causal_lm(folder, seed: int = 0):
    """A 2-layer Llama (hidden 32) with random weights and MiniLM's tokenizer, saved with save_pretrained."""
    from leedl_cli.models.causal_lm import tiny_random_causal_lm

    model, tok = tiny_random_causal_lm(seed)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


WRITERS = {
    "few_shot": write_sst2,
    "lm_pretrain": write_squad,
}
