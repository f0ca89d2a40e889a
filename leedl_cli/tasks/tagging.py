"""Sequence labelling, N inputs -> N labels (chapter 3, POS tagging): `task=pos_tagging`.

One label per word, cross-entropy over the labelled positions (-100 elsewhere: padding, and with a
pretrained backbone every sub-word but a word's first). Validation/test: token accuracy and macro F1 over the
tags (torchmetrics), and on test a per-tag table (precision, recall, F1, support) in results.json. The test
predictions are written as CoNLL-U (`predictions_test.conllu`: the test file with the UPOS column predicted)
beside results.json, so any CoNLL-U scorer can check them. For attention models, the attention weights of
every head for one test sentence are drawn in plots/ (`attention_layer<k>.png`).

Models: anything from `models/sequence.py` / `models/self_attention.py` (token ids + suffix/shape features)
or the Hugging Face wrapper with a token-classification head (`model=bert`, `task.head: token_classification`).
"""
from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
)

from leedl_cli.data.tokenized import IGNORE_INDEX
from leedl_cli.tasks.base import LeedlTask, StagedSteps

log = logging.getLogger(__name__)
HF_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
SCRATCH_INPUTS = ("input_ids", "suffix_ids", "shape_ids", "char_ids")


class TokenClassification(StagedSteps, LeedlTask):
    def __init__(self, model, optimizer=None, scheduler=None, num_classes: int = 17, label_smoothing: float = 0.0,
                 heatmap: bool = True, heatmap_words: tuple = (8, 16)) -> None:
        super().__init__(model, optimizer, scheduler)
        self.num_classes, self.label_smoothing = int(num_classes), float(label_smoothing)
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
        dm = self.trainer.datamodule
        names = list(getattr(dm, "labels", range(self.num_classes)))
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
            self._write_predictions(dm, store["rows"], names)
            if self.heatmap:
                self._draw_attention(dm)

    # ---- files -------------------------------------------------------------------------------
    def _write_predictions(self, dm, rows: dict, names: list) -> None:
        sentences = getattr(dm, "sentences", {}).get("test")
        source = getattr(dm, "files", {}).get("test")
        if not sentences or source is None or len(rows) != len(sentences):
            return
        from leedl_cli.data.ud import write_conllu_with_upos

        predicted, unlabelled = [], 0
        for i, sent in enumerate(sentences):
            tags = [names[k] for k in rows[i]]
            unlabelled += max(0, len(sent["words"]) - len(tags))
            predicted.append((tags + ["X"] * len(sent["words"]))[: len(sent["words"])])
        path = write_conllu_with_upos(source, self.run_dir / "predictions_test.conllu", predicted)
        self.results["predictions"] = str(path)
        if unlabelled:   # words cut off by a backbone's max_length: written as X, not in the metrics
            self.results["test_words_truncated"] = unlabelled
            log.warning("%d test words beyond max_length were not tagged (X in %s)", unlabelled, path.name)

    def _draw_attention(self, dm) -> None:
        if not hasattr(self.model, "attention_maps"):
            return
        sentences = dm.sentences["test"]
        lo, hi = self.heatmap_words
        index = next((i for i, s in enumerate(sentences) if lo <= len(s["words"]) <= hi), 0)
        feat = dm.features["test"][index]
        collated = dm._collator()([feat])
        batch = {k: collated[k].to(self.device) for k in SCRATCH_INPUTS if k in collated}
        from leedl_cli.analysis.attention_maps import plot_heads

        weights = self.model.attention_maps(**batch)
        words = sentences[index]["words"]
        paths = [str(plot_heads(w[0], words, self.plots_dir() / f"attention_layer{k + 1}.png",
                                f"layer {k + 1}: alpha' of each head (test sentence {index})"))
                 for k, w in enumerate(weights)]
        self.results["attention_plots"] = paths
