"""Measures of generated text (ch. 4, sections 4.8.3-4.8.4): how much a continuation repeats itself, how varied a
set of continuations is, and the perplexity a language model assigns to a text.

- `repetition(seq, n)`: the share of a sequence's n-grams that repeat an n-gram seen earlier in the same sequence,
  (all n-grams - distinct n-grams) / all n-grams; 0.0 for a sequence shorter than n. Human prose scores near 0;
  a decoder caught in a loop ("the first of the first of the ...") near 1.
- `distinct_n(seqs, n)`: distinct n-grams / all n-grams over every sequence together (Li et al. 2016): the
  diversity of a whole set of continuations.
- `perplexity(total_nll, tokens)`: exp(the mean negative log-likelihood per token).
- `words(text)`: the unit these are counted in for text: lower-cased words and punctuation marks, so that text
  from any tokenizer, and human text, are measured alike.

Pure Python: no torch.
"""
from __future__ import annotations

import math
import re
from typing import Sequence

_WORD = re.compile(r"\w+|[^\w\s]")


def words(text: str) -> list[str]:
    """Lower-cased words and punctuation marks of a text ("It's 4." -> ["it", "'", "s", "4", "."])."""
    return _WORD.findall(text.lower())


def ngrams(seq: Sequence, n: int) -> list[tuple]:
    return [tuple(seq[i:i + n]) for i in range(len(seq) - n + 1)]


def repetition(seq: Sequence, n: int = 4) -> float:
    """The share of the n-grams of one sequence that repeat an earlier n-gram of it (0.0 when it has none)."""
    grams = ngrams(seq, n)
    return (len(grams) - len(set(grams))) / len(grams) if grams else 0.0


def mean_repetition(seqs: Sequence[Sequence], n: int = 4) -> float:
    """`repetition` averaged over the sequences (each continuation counts once); 0.0 for none."""
    return sum(repetition(s, n) for s in seqs) / len(seqs) if seqs else 0.0


def distinct_n(sequences: Sequence[Sequence], n: int) -> float:
    """Distinct n-grams / all n-grams over the sequences (diversity of generated text); 0.0 when there are none."""
    grams = [g for s in sequences for g in ngrams(s, n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def perplexity(total_nll: float, tokens: int) -> float:
    """exp(total negative log-likelihood / tokens), capped at exp(50); nan for no tokens."""
    return math.exp(min(total_nll / tokens, 50.0)) if tokens else float("nan")
