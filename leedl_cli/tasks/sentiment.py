"""Sentence classification, N inputs -> 1 label: BERT (ch. 5, section 5.2.1 case 1: the [CLS] output -> linear
-> class) or a model trained from scratch (ch. 3: `model=self_attention`, the pooled encoder output -> linear).

The head is transformers' sequence-classification head on the [CLS] position (BERT's pooler — a dense
layer + tanh on [CLS] — then one linear layer), trained with the whole encoder (fine-tuning).
Accuracy on the test set (SST-2: the labelled GLUE dev set). The fine-tuned model + tokenizer are saved
in Hugging Face format in run_dir/hf_model.
"""
from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
import torchmetrics

from leedl_cli.tasks.base import LeedlTask, StagedSteps

log = logging.getLogger(__name__)
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class SentenceClassification(StagedSteps, LeedlTask):
    def __init__(self, model, optimizer=None, scheduler=None, num_classes: int = 2, export: bool = False) -> None:
        super().__init__(model, optimizer, scheduler)
        self.export = export
        self.acc = torch.nn.ModuleDict({f"{s}_acc": torchmetrics.Accuracy(task="multiclass", num_classes=num_classes)
                                        for s in ("train", "val", "test")})

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
        return loss

    def on_fit_end(self) -> None:
        if self.export and hasattr(self.model, "export") and self.run_dir is not None and self.trainer.is_global_zero and not self.diverged:
            self.results["hf_model"] = str(self.model.export(self.run_dir / "hf_model",
                                                             self.trainer.datamodule.tokenizer))
