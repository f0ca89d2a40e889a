"""Sequence labelling, N inputs -> N labels (chapter 3, POS tagging): `task=pos_tagging`.

One label per word, cross-entropy over the labelled positions (-100 elsewhere: padding, and with a
pretrained backbone every sub-word but a word's first). Validation/test: token accuracy and macro F1 over the
tags (torchmetrics), and on test a per-tag table (precision, recall, F1, support) in results.json. The test
predictions are written as CoNLL-U (`predictions_test.conllu`: the test file with the UPOS column predicted)
beside results.json, so any CoNLL-U scorer can check them. For attention models, the attention weights of
every head for one test sentence are drawn in plots/ (`attention_layer<k>.png`).

Models: anything from `models/sequence.py` / `models/self_attention.py` (token ids + suffix/shape features)
or the Hugging Face wrapper with a token-classification head (`model=bert`: `model.head: token_classification`, set by conf/task_model/pos_tagging/bert.yaml).
From the data (`Provided`): the tag count and names, the test sentences' words, the CoNLL-U writer of predicted
tags and one collated test sentence (heat maps).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Callable

import torch
import torch.nn.functional as F
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
)

from leedl_cli.contract import Probability, Provided
from leedl_cli.data.tokenized import IGNORE_INDEX
from leedl_cli.tasks.base import LeedlTask, StagedSteps

log = logging.getLogger(__name__)
HF_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
SCRATCH_INPUTS = ("input_ids", "suffix_ids", "shape_ids", "char_ids")


class TokenClassification(StagedSteps, LeedlTask):
    def __init__(self, model, optimizer=None, scheduler=None, run_dir: Path | None = None,
                 num_classes: Provided[int] = 17, label_names: Provided[tuple[str, ...] | None] = None,
                 test_words: Provided[Callable[[], list[list[str]]] | None] = None,
                 write_test_conllu: Provided[Callable[[list[list[str]], Path], Path] | None] = None,
                 test_batch: Provided[Callable[[int], dict] | None] = None,
                 label_smoothing: Annotated[float, Probability] = 0.0, heatmap: bool = True,
                 heatmap_words: tuple = (8, 16)) -> None:
        super().__init__(model, optimizer, scheduler, run_dir=run_dir)
        self.num_classes, self.label_smoothing = int(num_classes), float(label_smoothing)
        self.label_names = tuple(label_names) if label_names else tuple(str(i) for i in range(self.num_classes))
        self.test_words, self.write_test_conllu, self.test_batch = test_words, write_test_conllu, test_batch
        self.heatmap, self.heatmap_words = heatmap, tuple(heatmap_words)
        self.hf = hasattr(model, "hf")
        self._eval: dict[str, dict] = {}
        self._train_correct = self._train_count = 0

    # ---- forward -----------------------------------------------------------------------------
    def logits(self, batch) -> torch.Tensor:
        keys = HF_INPUTS if self.hf else SCRATCH_INPUTS
        out = self.model(**{k: batch[k] for k in keys if k in batch})
        return out.logits if hasattr(out, "logits") else out

    def _step(self, batch, stage: str):
        logits = self.logits(batch)
        labels = batch["labels"]
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE_INDEX,
                               label_smoothing=self.label_smoothing)
        keep = labels != IGNORE_INDEX
        preds = logits.argmax(-1)
        if stage == "train":
            if self.logs_this_step():
                self.log("train/loss_step", loss.detach(), on_step=True, on_epoch=False, prog_bar=True)
            with torch.no_grad():   # tallied per step (microseconds), logged once per epoch
                self._train_correct += (preds[keep] == labels[keep]).sum()
                self._train_count += keep.sum()
            return loss
        store = self._eval.setdefault(stage, {"preds": [], "labels": [], "loss": 0.0, "n": 0, "rows": {}})
        store["preds"].append(preds[keep].cpu())
        store["labels"].append(labels[keep].cpu())
        store["loss"] += float(loss) * int(keep.sum())
        store["n"] += int(keep.sum())
        if stage == "test":
            for row, fi in enumerate(batch["feature_index"].tolist()):
                store["rows"][fi] = preds[row][keep[row]].tolist()
        return loss

    # ---- metrics -----------------------------------------------------------------------------
    def on_train_epoch_end(self) -> None:
        count = int(self._train_count)
        if count:
            self.log("train/acc", float(self._train_correct) / count)
            self.log("train/tokens", float(count))
        self._train_correct = self._train_count = 0

    def _finish(self, stage: str) -> dict | None:
        store = self._eval.pop(stage, None)
        if not store or not store["n"]:
            return None
        preds, labels = torch.cat(store["preds"]), torch.cat(store["labels"])
        c = self.num_classes
        acc = multiclass_accuracy(preds, labels, c, average="micro")
        f1 = multiclass_f1_score(preds, labels, c, average="macro")
        self.log(f"{stage}/loss", store["loss"] / store["n"], prog_bar=True)
        self.log(f"{stage}/acc", acc, prog_bar=True)
        self.log(f"{stage}/f1", f1)
        store.update(preds_all=preds, labels_all=labels)
        return store

    def on_validation_epoch_end(self) -> None:
        self._finish("val")

    def on_test_epoch_end(self) -> None:
        store = self._finish("test")
        if store is None:
            return
        names = self.label_names
        p, y, c = store["preds_all"], store["labels_all"], self.num_classes
        prec = multiclass_precision(p, y, c, average="none")
        rec = multiclass_recall(p, y, c, average="none")
        f1 = multiclass_f1_score(p, y, c, average="none")
        support = torch.bincount(y, minlength=c)
        self.results["per_tag"] = {str(names[i]): {"precision": round(float(prec[i]), 4),
                                                   "recall": round(float(rec[i]), 4),
                                                   "f1": round(float(f1[i]), 4), "support": int(support[i])}
                                   for i in range(c)}
        self.results["test_tokens"] = int(len(y))
        if self.run_dir is not None and self.trainer.is_global_zero:
            self._write_predictions(store["rows"], names)
            if self.heatmap:
                self._draw_attention()

    # ---- files -------------------------------------------------------------------------------
    def _write_predictions(self, rows: dict, names: tuple) -> None:
        if self.test_words is None or self.write_test_conllu is None:
            return
        sentences = self.test_words()
        if not sentences or len(rows) != len(sentences):
            return
        predicted, unlabelled = [], 0
        for i, words in enumerate(sentences):
            tags = [names[k] for k in rows[i]]
            unlabelled += max(0, len(words) - len(tags))
            predicted.append((tags + ["X"] * len(words))[: len(words)])
        path = self.write_test_conllu(predicted, self.run_dir / "predictions_test.conllu")
        self.results["predictions"] = str(path)
        if unlabelled:   # words cut off by a backbone's max_length: written as X, not in the metrics
            self.results["test_words_truncated"] = unlabelled
            log.warning("%d test words beyond max_length were not tagged (X in %s)", unlabelled, path.name)

    def _draw_attention(self) -> None:
        if not hasattr(self.model, "attention_maps") or self.test_words is None or self.test_batch is None:
            return
        sentences = self.test_words()
        lo, hi = self.heatmap_words
        index = next((i for i, words in enumerate(sentences) if lo <= len(words) <= hi), 0)
        collated = self.test_batch(index)
        batch = {k: collated[k].to(self.device) for k in SCRATCH_INPUTS if k in collated}
        from leedl_cli.analysis.attention_maps import plot_heads

        weights = self.model.attention_maps(**batch)
        words = sentences[index]
        paths = [str(plot_heads(w[0], words, self.plots_dir() / f"attention_layer{k + 1}.png",
                                f"layer {k + 1}: alpha' of each head (test sentence {index})"))
                 for k, w in enumerate(weights)]
        self.results["attention_plots"] = paths
