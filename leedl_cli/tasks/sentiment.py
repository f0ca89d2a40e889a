"""One label per sentence or per sentence pair, N inputs -> 1 label: BERT (ch. 5, section 5.2.1 cases 1 and 3:
the [CLS] output -> linear -> class) or a model trained from scratch (ch. 3: `model=self_attention`, the pooled
encoder output -> linear).

One module for both uses: `task=sentiment` (SST-2, one sentence -> positive/negative) and `task=nli` (a
premise/hypothesis pair as `[CLS] s1 [SEP] s2 [SEP]` -> entailment/neutral/contradiction); the data module
decides what a sequence is. The head is transformers' sequence-classification head on the [CLS] position
(BERT's pooler — a dense layer + tanh on [CLS] — then one linear layer), trained with the whole encoder
(fine-tuning). Accuracy on the test set (SST-2: the labelled GLUE dev set; NLI: SNLI test).

Predictions are saved per example in run_dir/predictions_{val,test}.tsv (`index`, `label`, `prediction` as
label names, and the example's text): re-scoring that file gives back the reported accuracy
(`score_predictions`). With `export: true` the fine-tuned model + tokenizer go to run_dir/hf_model.
From the data (`Provided`): the classes and their names, each split's texts, the tokenizer (export) and how the
data was split (results.json `data_split`).
"""
from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
import torchmetrics

from leedl_cli.atomic import replace_atomically
from leedl_cli.contract import Provided
from leedl_cli.tasks.base import LeedlTask, StagedSteps

log = logging.getLogger(__name__)
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def score_predictions(path: str | Path) -> dict:
    """Accuracy (and example count) of a predictions_{split}.tsv file written by SentenceClassification."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    correct = sum(r["label"] == r["prediction"] for r in rows)
    return {"acc": correct / len(rows) if rows else float("nan"), "n": len(rows)}


class SentenceClassification(StagedSteps, LeedlTask):
    def __init__(self, model, optimizer=None, scheduler=None, run_dir: Path | None = None,
                 num_classes: Provided[int] = 2, label_names: Provided[tuple[str, ...] | None] = None,
                 texts: Provided[Callable[[str], list[str]] | None] = None, tokenizer: Provided[Any] = None,
                 split_info: Provided[Callable[[], dict] | None] = None, export: bool = False,
                 save_predictions: bool = True) -> None:
        super().__init__(model, optimizer, scheduler, run_dir=run_dir)
        self.export, self.save_predictions = export, save_predictions
        self.label_names = tuple(label_names) if label_names is not None else None
        self.texts, self.tokenizer, self.split_info = texts, tokenizer, split_info
        self.acc = torch.nn.ModuleDict({f"{s}_acc": torchmetrics.Accuracy(task="multiclass", num_classes=num_classes)
                                        for s in ("train", "val", "test")})
        self._predictions: dict[str, dict[int, tuple[int, int]]] = {}

    def _step(self, batch, stage: str):
        out = self.model(**{k: batch[k] for k in MODEL_INPUTS if k in batch})
        logits = out.logits if hasattr(out, "logits") else out   # HF wrapper, or a from-scratch model's logits
        y = batch["labels"]
        loss = F.cross_entropy(logits, y)
        acc = self.acc[f"{stage}_acc"]
        acc(logits.detach(), y)
        self.log(f"{stage}/loss", loss, on_step=stage == "train", on_epoch=True, prog_bar=True, batch_size=len(y))
        self.log(f"{stage}/acc", acc, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(y))
        if stage == "train":
            n_tokens = batch["attention_mask"].sum() if "attention_mask" in batch else (batch["input_ids"] != 0).sum()
            self.log("train/tokens", float(n_tokens), on_step=False, on_epoch=True,
                     reduce_fx="sum", batch_size=len(y))
        elif "feature_index" in batch and not self.trainer.sanity_checking:
            store = self._predictions.setdefault(stage, {})
            for i, p, t in zip(batch["feature_index"].tolist(), logits.argmax(-1).tolist(), y.tolist()):
                store[i] = (t, p)
        return loss

    def _write(self, stage: str) -> None:
        store = self._predictions.pop(stage, None)
        if not store or not self.save_predictions or self.run_dir is None:
            return
        names = self.label_names
        texts = self.texts(stage) if self.texts is not None else None

        def write(f) -> None:
            w = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_MINIMAL)
            w.writerow(["index", "label", "prediction"] + (["text"] if texts else []))
            for i in sorted(store):
                t, p = store[i]
                row = [i, names[t] if names else t, names[p] if names else p]
                w.writerow(row + ([texts[i]] if texts else []))

        path = replace_atomically(self.run_dir / f"predictions_{stage}.tsv", write, newline="")
        self.results[f"predictions_{stage}"] = str(path)

    def on_validation_epoch_end(self) -> None:
        self._write("val")

    def on_test_epoch_end(self) -> None:
        self._write("test")

    def on_fit_start(self) -> None:
        if self.split_info is not None:
            self.results["data_split"] = self.split_info()

    def on_fit_end(self) -> None:
        if self.export and hasattr(self.model, "export") and self.run_dir is not None and self.trainer.is_global_zero and not self.diverged:
            self.results["hf_model"] = str(self.model.export(self.run_dir / "hf_model", self.tokenizer))
