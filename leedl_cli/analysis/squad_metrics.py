"""Exact match and F1 of extractive QA with the official SQuAD v1.1 answer normalisation.

normalize_answer: lower case, drop punctuation, drop the articles a/an/the, collapse white space
(as in the official evaluate-v1.1.py). F1 is over the bag of normalised tokens; a question scores the
maximum over its ground-truth answers. Text with CJK characters (DRCD, XQuAD zh) is compared per
character, since it has no spaces between words (the usual practice for Chinese MRC).
No torch import: pure Python.
"""
from __future__ import annotations

import re
import string
from collections import Counter

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef]")
_PUNCT = set(string.punctuation)
_CJK_OR_WORD = re.compile(_CJK.pattern + r"|[^\s\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef]+")
_CJK_PUNCT = set("，。、；：？！「」『』（）《》〈〉　")


def normalize_answer(s: str) -> str:
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def _tokens(s: str) -> list[str]:
    norm = normalize_answer(s)
    if _CJK.search(norm):   # one token per CJK character, runs of other characters stay words
        return [t for t in _CJK_OR_WORD.findall(norm) if t not in _CJK_PUNCT]
    return norm.split()


def exact_match(prediction: str, truth: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(truth))


def f1(prediction: str, truth: str) -> float:
    pred, gold = _tokens(prediction), _tokens(truth)
    common = Counter(pred) & Counter(gold)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions: dict[str, str], answers: dict[str, list[str]]) -> dict[str, float]:
    """{'exact_match', 'f1'} in percent, averaged over the questions of `answers` (missing prediction = "")."""
    if not answers:
        return {"exact_match": 0.0, "f1": 0.0}
    em = f = 0.0
    for qid, truths in answers.items():
        pred = predictions.get(qid, "")
        truths = truths or [""]
        em += max(exact_match(pred, t) for t in truths)
        f += max(f1(pred, t) for t in truths)
    return {"exact_match": 100.0 * em / len(answers), "f1": 100.0 * f / len(answers)}
