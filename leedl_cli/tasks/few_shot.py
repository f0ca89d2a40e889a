"""GPT few-shot in-context learning (ch. 5, section 5.3): `task=few_shot`, no training (`fit: false`).

A pretrained causal LM reads k demonstrations (example + its label word) followed by the test example, and the
class whose label word it finds most likely next is the prediction:

    prediction = argmax_c  log p(label word of c | demonstrations, test example)

(summed over the label word's tokens when it has several). The demonstrations of one draw are the same for
every test example, so their keys and values are computed once and reused (the KV cache): each test example
costs only its own tokens. With `draws > 1` every draw is scored and `test/acc` is their mean, `test/acc_std`
their standard deviation; `test/acc_draw<i>` each one.

Saved in the run directory: `predictions.csv` (one row per test example and draw: gold label, the log-likelihood
of every label word, the prediction; `rescore(path)` recomputes the accuracy from it) and `demonstrations.json`
(the prompt prefix of every draw, and the content-free scores below).

Small models prefer one label word whatever the input (their accuracy sits near the majority class). Contextual
calibration (Zhao et al. 2021, "Calibrate before use") measures that bias with a content-free input ("N/A" in
place of the sentence) after the same demonstrations and divides it out: prediction = argmax_c log p(c | x) -
log p(c | N/A). It is logged beside the plain accuracy as `test/acc_calibrated` (`rescore(path, calibrated=True)`
recomputes it from the saved files).

From the data (`Provided`): the prompt format (template, label words), the number of draws and each draw's
prompt prefix (its demonstrations as text).
"""
from __future__ import annotations

import copy
import csv
import json
import logging
import statistics
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from leedl_cli.atomic import write_csv_atomic, write_text_atomic
from leedl_cli.contract import Provided
from leedl_cli.data.few_shot import PromptFormat
from leedl_cli.tasks.base import LeedlTask

log = logging.getLogger(__name__)
PREDICTIONS_FILE = "predictions.csv"


def encode(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def start_ids(tokenizer) -> list[int]:
    """The token a causal LM's text starts with (BOS), if its tokenizer has one."""
    bos = getattr(tokenizer, "bos_token_id", None)
    return [] if bos is None else [int(bos)]


def _cache_argument(hf) -> str:
    """transformers >= 5.2x calls the key/value cache `cache`; earlier versions `past_key_values`."""
    import inspect

    return "cache" if "cache" in inspect.signature(hf.forward).parameters else "past_key_values"


def prefix_cache(hf, prefix: list[int]):
    """The model's keys/values for the shared prefix (None for an empty prefix)."""
    if not prefix:
        return None
    with torch.no_grad():
        out = hf(input_ids=torch.tensor([prefix]), use_cache=True)
    return getattr(out, _cache_argument(hf))


def last_logits(hf, kwargs: dict, last: torch.Tensor) -> torch.Tensor:
    """[N, V] next-token logits at position last[i] of row i. The output layer (the vocabulary: a fifth of
    SmolLM2's computation per token) runs only there, when the model is a base model + output embeddings."""
    head, base = hf.get_output_embeddings(), getattr(hf, "base_model", None)
    plain = head is not None and base is not None and base is not hf and not any(
        getattr(hf.config, a, None) for a in ("final_logit_softcapping", "logit_scale", "logits_scaling"))
    if not plain:
        return hf(**kwargs).logits[torch.arange(len(last)), last]
    hidden = base(**kwargs).last_hidden_state
    return head(hidden[torch.arange(len(last)), last])


def label_log_likelihoods(hf, prefix: list[int], queries: list[list[int]], labels: list[list[int]], cache=None,
                          pad_id: int = 0) -> torch.Tensor:
    """[B, C]: log p(labels[c] | prefix + queries[b]), the sum over the label's tokens.

    `cache` (from `prefix_cache(hf, prefix)`) holds the prefix's keys/values; it is not modified. When every
    label is one token, one forward pass per query reads them all at its last position; otherwise each
    (query, label) pair is scored as its own sequence.
    """
    single = all(len(lab) == 1 for lab in labels)
    if single:
        rows = [(q, None) for q in queries]
    else:
        rows = [(q, lab) for q in queries for lab in labels]
    seqs = [q + (lab or []) for q, lab in rows]
    if any(not s for s in seqs):
        raise ValueError("every query needs at least one token")
    n, longest, p = len(seqs), max(len(s) for s in seqs), len(prefix)
    ids = torch.full((n, longest), pad_id, dtype=torch.long)
    mask = torch.zeros(n, p + longest, dtype=torch.long)
    mask[:, :p] = 1
    for i, s in enumerate(seqs):   # right padding: the real tokens keep positions p, p+1, ...
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, p: p + len(s)] = 1
    kwargs = {"input_ids": ids, "attention_mask": mask}
    with torch.no_grad():
        if p:
            if cache is None:
                cache = prefix_cache(hf, prefix)
            past = copy.deepcopy(cache)
            past.batch_repeat_interleave(n)
            kwargs[_cache_argument(hf)] = past
        if single:
            last = torch.tensor([len(q) - 1 for q in queries])
            word = torch.tensor([lab[0] for lab in labels])
            return F.log_softmax(last_logits(hf, kwargs, last).float(), -1)[:, word]
        logp = F.log_softmax(hf(**kwargs).logits.float(), -1)
    scores = torch.empty(n)
    for i, (q, lab) in enumerate(rows):
        # the token at position len(q) + j is predicted at position len(q) + j - 1 (a query has >= 1 token)
        pos = torch.arange(len(q) - 1, len(q) - 1 + len(lab))
        scores[i] = logp[i, pos, torch.tensor(lab)].sum()
    return scores.view(len(queries), len(labels))


def rescore(path: str | Path, calibrated: bool = False) -> dict[int, float]:
    """Accuracy per draw recomputed from a saved predictions.csv (argmax over the `logp_<c>` columns); with
    `calibrated`, minus the content-free scores of each draw from demonstrations.json beside it."""
    path = Path(path)
    free = {}
    if calibrated:
        free = {d["draw"]: d["content_free_logp"] for d in
                json.loads((path.parent / "demonstrations.json").read_text(encoding="utf-8"))}
    right: dict[int, list[bool]] = {}
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            draw = int(row["draw"])
            scores = [(float(v) - (free[draw][int(k.split("_")[1])] if calibrated else 0.0), int(k.split("_")[1]))
                      for k, v in row.items() if k.startswith("logp_")]
            pred = max(scores)[1]
            right.setdefault(draw, []).append(pred == int(row["label"]))
    return {d: sum(r) / len(r) for d, r in sorted(right.items())}


class FewShotClassification(LeedlTask):
    """In-context learning: classify by the label word the causal LM finds most likely after k demonstrations."""

    def __init__(self, model, optimizer=None, scheduler=None, run_dir: Path | None = None,
                 prompt_format: Provided[PromptFormat | None] = None, draws: Provided[int] = 1,
                 prompt_prefix: Provided[Callable[[int], str] | None] = None, save_predictions: bool = True) -> None:
        super().__init__(model, optimizer, scheduler, run_dir=run_dir)
        self.format, self.draws, self.prompt_prefix = prompt_format, int(draws), prompt_prefix
        self.save_predictions = save_predictions
        self.rows: list[dict] = []

    def on_test_start(self) -> None:
        tok, hf = self.model.tokenizer, self.model.hf
        self.labels = [encode(tok, w) for w in self.format.label_words]
        self.prefixes, self.caches, self.texts, self.content_free = [], [], [], []
        fields = self.format.fields
        free_query = encode(tok, self.format.render({f: "N/A" for f in fields}))
        for d in range(self.draws):
            text = self.prompt_prefix(d)
            prefix = start_ids(tok) + (encode(tok, text) if text else [])
            self.texts.append(text)
            self.prefixes.append(prefix)
            self.caches.append(prefix_cache(hf, prefix))
            free = label_log_likelihoods(hf, prefix, [free_query], self.labels, self.caches[-1],
                                         tok.pad_token_id or 0)[0] if fields else torch.zeros(len(self.labels))
            self.content_free.append([float(x) for x in free])
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
        self.rows = []
        log.info("few-shot: label words %s -> tokens %s; prompt prefix of draw 0: %d tokens",
                 list(self.format.label_words), self.labels, len(self.prefixes[0]))

    def test_step(self, batch, batch_idx):
        tok = self.model.tokenizer
        queries = [encode(tok, self.format.render(f)) for f in batch["fields"]]
        for d in range(self.draws):
            scores = label_log_likelihoods(self.model.hf, self.prefixes[d], queries, self.labels, self.caches[d],
                                           self.pad_id)
            preds = scores.argmax(-1).tolist()
            for i, index in enumerate(batch["index"]):
                calibrated = int((scores[i] - torch.tensor(self.content_free[d])).argmax())
                row = {"index": index, "draw": d, "label": batch["label"][i], "prediction": preds[i],
                       "prediction_calibrated": calibrated}
                row.update({f"logp_{c}": round(float(scores[i, c]), 5) for c in range(len(self.labels))})
                self.rows.append(row)

    def on_test_epoch_end(self) -> None:
        accs, cal = [], []
        for d in range(self.draws):
            rows = [r for r in self.rows if r["draw"] == d]
            acc = sum(r["prediction"] == r["label"] for r in rows) / max(1, len(rows))
            accs.append(acc)
            cal.append(sum(r["prediction_calibrated"] == r["label"] for r in rows) / max(1, len(rows)))
            if self.draws > 1:
                self.log(f"test/acc_draw{d}", acc)
        self.log("test/acc", statistics.fmean(accs))
        self.log("test/acc_calibrated", statistics.fmean(cal))
        if self.draws > 1:
            self.log("test/acc_std", statistics.stdev(accs))
            self.log("test/acc_calibrated_std", statistics.stdev(cal))
        gold = [r["label"] for r in self.rows if r["draw"] == 0]
        if gold:   # the majority class of the test set: the accuracy of always answering the same
            self.log("test/acc_majority", max(gold.count(c) for c in set(gold)) / len(gold))
        self.results["few_shot"] = {"accuracy_per_draw": accs, "calibrated_accuracy_per_draw": cal,
                                    "content_free_logp": self.content_free,
                                    "label_words": list(self.format.label_words),
                                    "prefix_tokens": [len(p) for p in self.prefixes]}
        self.rows.sort(key=lambda r: (r["draw"], r["index"]))
        if self.save_predictions and self.run_dir is not None and self.trainer.is_global_zero:
            self._write()

    def _write(self) -> None:
        path = write_csv_atomic(self.run_dir / PREDICTIONS_FILE, list(self.rows[0]) if self.rows else ["index"],
                                self.rows)
        write_text_atomic(self.run_dir / "demonstrations.json", json.dumps(
            [{"draw": d, "prefix": t, "content_free_logp": c} for d, (t, c) in enumerate(zip(self.texts, self.content_free))],
            indent=1, ensure_ascii=False))
        self.results["predictions"] = str(path)
