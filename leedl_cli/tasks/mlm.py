"""Masked-language-model pretraining of a small BERT from scratch (ch. 5, section 5.1): `task=mlm_pretrain`.

The data module masks 15% of the tokens (80% [MASK], 10% a random token, 10% unchanged); the model
predicts the original token at the chosen positions (cross-entropy over the vocabulary, the other
positions ignored). Logged: loss, masked-token accuracy, perplexity. At the end the encoder + MLM head
and the tokenizer are saved in Hugging Face format in run_dir/hf_model: give that directory as
`model.backbone=<run_dir>/hf_model` to `bert_squad` or `sentiment` (the "own pretraining" row).
"""
from __future__ import annotations

import logging
import math

import torch

from leedl_cli.data.tokenized import IGNORE_INDEX
from leedl_cli.tasks.base import LeedlTask, StagedSteps

log = logging.getLogger(__name__)


class MaskedLMPretraining(StagedSteps, LeedlTask):
    def __init__(self, model, optimizer=None, scheduler=None, export: bool = True) -> None:
        super().__init__(model, optimizer, scheduler)
        self.export = export

    def _step(self, batch, stage: str):
        out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
        chosen = batch["labels"] != IGNORE_INDEX
        n = int(chosen.sum())
        acc = (out.logits.argmax(-1)[chosen] == batch["labels"][chosen]).float().mean() if n else torch.tensor(0.0)
        self.log(f"{stage}/loss", out.loss, on_step=stage == "train", on_epoch=True, prog_bar=True, batch_size=max(n, 1))
        self.log(f"{stage}/masked_acc", acc, on_step=False, on_epoch=True, batch_size=max(n, 1))
        return out.loss

    def on_test_epoch_end(self) -> None:
        loss = self.trainer.callback_metrics.get("test/loss")
        if loss is not None:
            self.log("test/perplexity", math.exp(min(float(loss), 50.0)))

    def on_fit_end(self) -> None:
        if self.export and self.run_dir is not None and self.trainer.is_global_zero and not self.diverged:
            path = self.model.export(self.run_dir / "hf_model", self.trainer.datamodule.tokenizer)
            self.results["hf_model"] = str(path)
            log.info("pretrained BERT saved: use it with model.backbone=%s", path)
