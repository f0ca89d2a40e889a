"""Extractive question answering with BERT (ch. 5, Figs 5.14-5.16): `task=bert_squad`.

Two learned vectors (the QA head's two output units) score every token as the answer's start and end;
the loss is the cross-entropy of the true start plus that of the true end. At evaluation the answer is
the best valid span over all windows of a question — start <= end, both inside the passage, at most
`max_answer_tokens` long, score = start logit + end logit — mapped back to characters of the passage.
Exact match and F1 use the official SQuAD v1.1 normalisation. Predictions are saved per question
(run_dir/predictions_{val,test}.json) and the fine-tuned model + tokenizer in Hugging Face format
(run_dir/hf_model: `transformers.pipeline("question-answering", model=...)` loads it).
From the data (`Provided`): the questions and windows of the evaluation splits, the tokenizer (export) and how
the data was split (results.json `data_split`).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any, Callable

import numpy as np
import torch

from leedl_cli.analysis.squad_metrics import squad_scores
from leedl_cli.atomic import write_json_atomic
from leedl_cli.contract import AtLeastOne, Provided
from leedl_cli.tasks.base import LeedlTask

log = logging.getLogger(__name__)
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def best_span(start_logits, end_logits, offsets, max_answer_tokens: int = 30, n_best: int = 20):
    """(score, start_char, end_char) of the best valid span of one window, or None if none is valid.

    offsets[k] is the (start, end) character span of passage token k, None for question/special tokens.
    """
    start_logits, end_logits = np.asarray(start_logits), np.asarray(end_logits)
    n = min(len(offsets), len(start_logits))
    starts = np.argsort(start_logits[:n])[::-1][:n_best]
    ends = np.argsort(end_logits[:n])[::-1][:n_best]
    best = None
    for s in starts:
        if offsets[s] is None:
            continue
        for e in ends:
            if offsets[e] is None or e < s or e - s + 1 > max_answer_tokens:
                continue
            score = float(start_logits[s] + end_logits[e])
            if best is None or score > best[0]:
                best = (score, int(offsets[s][0]), int(offsets[e][1]))
    return best


def decode_answers(examples: list[dict], features: list[dict], start_logits: dict, end_logits: dict,
                   max_answer_tokens: int = 30, n_best: int = 20) -> dict[str, str]:
    """Best span of each question across all of its windows -> {question id: answer text}."""
    best: dict[int, tuple] = {}
    for fi, feat in enumerate(features):
        if fi not in start_logits:
            continue
        span = best_span(start_logits[fi], end_logits[fi], feat["offsets"], max_answer_tokens, n_best)
        ex = feat["example_index"]
        if span is not None and (ex not in best or span[0] > best[ex][0]):
            best[ex] = span
    out = {}
    for ei, ex in enumerate(examples):
        if ei in best:
            _, a, b = best[ei]
            out[ex["id"]] = ex["context"][a:b]
    return out


class ExtractiveQA(LeedlTask):
    def __init__(self, model, optimizer=None, scheduler=None, run_dir: Path | None = None,
                 eval_examples: Provided[Callable[[str], list[dict]] | None] = None,
                 eval_features: Provided[Callable[[str], list[dict]] | None] = None, tokenizer: Provided[Any] = None,
                 split_info: Provided[Callable[[], dict] | None] = None, max_answer_tokens: Annotated[int, AtLeastOne] = 30,
                 n_best: Annotated[int, AtLeastOne] = 20, export: bool = True) -> None:
        super().__init__(model, optimizer, scheduler, run_dir=run_dir)
        self.max_answer_tokens, self.n_best, self.export = int(max_answer_tokens), int(n_best), export
        self.eval_examples, self.eval_features = eval_examples, eval_features
        self.tokenizer, self.split_info = tokenizer, split_info
        self._logits: dict[str, dict] = {}

    def _inputs(self, batch: dict) -> dict:
        return {k: batch[k] for k in MODEL_INPUTS if k in batch}

    def training_step(self, batch, batch_idx):
        out = self.model(**self._inputs(batch), start_positions=batch["start_positions"],
                         end_positions=batch["end_positions"])
        n = len(batch["input_ids"])
        self.log("train/loss", out.loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=n)
        self.log("train/tokens", float(batch["attention_mask"].sum()), on_step=False, on_epoch=True,
                 reduce_fx="sum", batch_size=n)
        return out.loss

    # ---- evaluation: collect logits per window, decode per question at epoch end --------------
    def _collect(self, batch, stage: str) -> None:
        out = self.model(**self._inputs(batch))
        store = self._logits.setdefault(stage, {"start": {}, "end": {}})
        mask = batch["attention_mask"].bool()
        for row, fi in enumerate(batch["feature_index"].tolist()):
            length = int(mask[row].sum())
            store["start"][fi] = out.start_logits[row, :length].float().cpu().numpy()
            store["end"][fi] = out.end_logits[row, :length].float().cpu().numpy()

    def validation_step(self, batch, batch_idx):
        self._collect(batch, "val")

    def test_step(self, batch, batch_idx):
        self._collect(batch, "test")

    def _finish(self, stage: str) -> None:
        store = self._logits.pop(stage, None)
        if store is None or self.trainer.sanity_checking:
            return
        examples, features = self.eval_examples(stage), self.eval_features(stage)
        predictions = decode_answers(examples, features, store["start"], store["end"], self.max_answer_tokens,
                                     self.n_best)
        seen = {f["example_index"] for fi, f in enumerate(features) if fi in store["start"]}
        answers = {examples[i]["id"]: examples[i]["answers"]["text"] for i in sorted(seen)}
        scores = squad_scores(predictions, answers)
        self.log(f"{stage}/em", scores["exact_match"], prog_bar=True)
        self.log(f"{stage}/f1", scores["f1"], prog_bar=True)
        self.results[f"{stage}_questions_scored"] = len(answers)
        if self.run_dir is not None:
            write_json_atomic(self.run_dir / f"predictions_{stage}.json",
                              {qid: predictions.get(qid, "") for qid in answers})

    def on_validation_epoch_end(self) -> None:
        self._finish("val")

    def on_test_epoch_end(self) -> None:
        self._finish("test")

    def on_fit_start(self) -> None:
        if self.split_info is not None:
            self.results["data_split"] = self.split_info()

    def on_fit_end(self) -> None:
        if self.export and self.run_dir is not None and self.trainer.is_global_zero and not self.diverged:
            path = self.model.export(self.run_dir / "hf_model", self.tokenizer)
            self.results["hf_model"] = str(path)
            log.info("fine-tuned model + tokenizer saved in Hugging Face format: %s", path)


def answer(model_dir, question: str | list[str], context: str | list[str], max_length: int = 384,
           stride: int = 128, max_answer_tokens: int = 30) -> list[dict]:
    """Answer questions with an exported directory (run_dir/hf_model) — what transformers' removed
    `pipeline("question-answering")` did: [{'answer', 'start', 'end', 'score'}] per question."""
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from leedl_cli.data.squad import tokenize_examples

    questions = [question] if isinstance(question, str) else list(question)
    contexts = [context] * len(questions) if isinstance(context, str) else list(context)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForQuestionAnswering.from_pretrained(str(model_dir)).eval()
    examples = [{"id": str(i), "question": q, "context": c, "answers": {"text": [], "answer_start": []}}
                for i, (q, c) in enumerate(zip(questions, contexts))]
    features = tokenize_examples(tokenizer, examples, max_length, stride, train=False)
    best: dict[int, tuple] = {}
    with torch.no_grad():
        for feat in features:
            inputs = {k: torch.tensor([feat[k]]) for k in MODEL_INPUTS if k in feat}
            out = model(**inputs)
            span = best_span(out.start_logits[0].numpy(), out.end_logits[0].numpy(), feat["offsets"],
                             max_answer_tokens)
            ex = feat["example_index"]
            if span is not None and (ex not in best or span[0] > best[ex][0]):
                best[ex] = span
    results = []
    for i, ex in enumerate(examples):
        score, a, b = best.get(i, (float("-inf"), 0, 0))
        results.append({"answer": ex["context"][a:b], "start": a, "end": b, "score": score})
    return results
