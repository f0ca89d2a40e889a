"""Masked-language-model pretraining of a small BERT from scratch (ch. 5, section 5.1): `task=mlm_pretrain`.

The data module masks 15% of the tokens (80% [MASK], 10% a random token, 10% unchanged); the model
predicts the original token at the chosen positions (cross-entropy over the vocabulary, the other
positions ignored). Logged: loss, masked-token accuracy, perplexity. At the end the encoder + MLM head
and the tokenizer are saved in Hugging Face format in run_dir/hf_model: give that directory as
`model.backbone=<run_dir>/hf_model` to `bert_squad` or `sentiment` (the "own pretraining" row).
From the data (`Provided`): the tokenizer, saved with the model.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from leedl_cli.contract import Provided
from leedl_cli.data.tokenized import IGNORE_INDEX
from leedl_cli.tasks.base import LeedlTask, StagedSteps

log = logging.getLogger(__name__)


class MaskedLMPretraining(StagedSteps, LeedlTask):
    def __init__(self, model, optimizer=None, scheduler=None, run_dir: Path | None = None,
                 tokenizer: Provided[Any] = None, export: bool = True) -> None:
        super().__init__(model, optimizer, scheduler, run_dir=run_dir)
        self.tokenizer, self.export = tokenizer, export

    def _masked_logits(self, batch, chosen):
        """Vocabulary logits of the chosen (masked) positions only.

        BERT's MLM head (`hf.cls`: dense + LayerNorm + the vocabulary projection) is applied to the ~15% chosen
        positions instead of every position: the same loss, ~6x less work in the vocabulary projection, which
        dominates a small BERT's cost. Other architectures: the full forward, then the chosen positions.
        """
        hf = getattr(self.model, "hf", None)
        base = getattr(hf, getattr(hf, "base_model_prefix", ""), None) if hf is not None else None
        if base is not None and hasattr(hf, "cls"):
            hidden = base(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
            return hf.cls(hidden[chosen])
        return self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[chosen]

    def _step(self, batch, stage: str):
        labels = batch["labels"]
        chosen = labels != IGNORE_INDEX
        n = int(chosen.sum())
        logits = self._masked_logits(batch, chosen)
        target = labels[chosen]
        loss = F.cross_entropy(logits, target) if n else logits.sum() * 0.0
        acc = (logits.argmax(-1) == target).float().mean() if n else torch.tensor(0.0)
        self.log(f"{stage}/loss", loss, on_step=stage == "train", on_epoch=True, prog_bar=True, batch_size=max(n, 1))
        self.log(f"{stage}/masked_acc", acc, on_step=False, on_epoch=True, batch_size=max(n, 1))
        return loss

    def on_test_epoch_end(self) -> None:
        loss = self.trainer.callback_metrics.get("test/loss")
        if loss is not None:
            self.log("test/perplexity", math.exp(min(float(loss), 50.0)))

    def on_fit_end(self) -> None:
        if self.export and self.run_dir is not None and self.trainer.is_global_zero and not self.diverged:
            path = self.model.export(self.run_dir / "hf_model", self.tokenizer)
            self.results["hf_model"] = str(path)
            log.info("pretrained BERT saved: use it with model.backbone=%s", path)
