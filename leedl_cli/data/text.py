"""The masked-LM corpus (`TextDataModule`, task=mlm_pretrain): a consumer of the tokenized-data base.

Any text corpus (SQuAD contexts, SST-2 sentences, a plain text file) cut into blocks of `max_length` tokens
with the backbone's tokenizer, or (`vocab_size: N`) with a WordPiece vocabulary of N entries learned from the
corpus's training split, as BERT's own vocabulary was (saved with the model, so fine-tuning uses it too);
the masking (15% of tokens chosen; of those 80% [MASK], 10% a random token, 10% unchanged) happens per batch.
The shared pieces (padding, splits, loaders) live in `data/tokenized.py`; this module imports the readers of the
families it takes text from (SST-2, SQuAD), never the other way round.

What it provides (`TextSpec`): the vocabulary size (a model from random init takes it) and the tokenizer (saved with
the pretrained model, so fine-tuning tokenizes the same way).
"""
from __future__ import annotations

import gzip
import logging
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import torch

from leedl_cli.contract import AtLeastOne, OpenProbability, Range
from leedl_cli.data.files import data_reader
from leedl_cli.data.squad import dataset_file, read_squad
from leedl_cli.data.sst2 import read_tsv
from leedl_cli.data.tokenized import (  # noqa: F401
    IGNORE_INDEX,
    SPLIT_SEED,
    FeatureDataset,
    PadCollator,
    TokenizedDataModule,
    split_indices,
)
from leedl_cli.data.tokenizers import Vocabulary, load_pretrained_tokenizer
from leedl_cli.errors import LeedlError
from leedl_cli.paths import data_path, require_files

log = logging.getLogger(__name__)


def mask_tokens(input_ids: torch.Tensor, tokenizer, special_mask: torch.Tensor | None = None,
                probability: float = 0.15, generator: torch.Generator | None = None):
    """BERT's masking (section 5.1): choose `probability` of the real tokens; of those 80% -> [MASK],
    10% -> a random token, 10% unchanged. Returns (masked inputs, labels with -100 where not chosen)."""
    labels = input_ids.clone()
    inputs = input_ids.clone()
    if special_mask is None:
        special_ids = torch.tensor(tokenizer.all_special_ids)
        special_mask = torch.isin(input_ids, special_ids)
    chance = torch.full(input_ids.shape, probability)
    chance.masked_fill_(special_mask, 0.0)
    chosen = torch.bernoulli(chance, generator=generator).bool()
    labels[~chosen] = IGNORE_INDEX
    to_mask = torch.bernoulli(torch.full(input_ids.shape, 0.8), generator=generator).bool() & chosen
    inputs[to_mask] = tokenizer.mask_token_id
    to_random = torch.bernoulli(torch.full(input_ids.shape, 0.5), generator=generator).bool() & chosen & ~to_mask
    inputs[to_random] = torch.randint(len(tokenizer), input_ids.shape, generator=generator)[to_random]
    return inputs, labels


class MLMCollator(PadCollator):
    """Pad, then mask: a fresh masking per batch (dynamic masking)."""

    def __init__(self, tokenizer, probability: float = 0.15) -> None:
        super().__init__(tokenizer.pad_token_id)
        self.tokenizer, self.probability = tokenizer, probability

    def __call__(self, items: list[dict]) -> dict:
        batch = super().__call__(items)
        special = torch.isin(batch["input_ids"], torch.tensor(self.tokenizer.all_special_ids))
        batch["input_ids"], batch["labels"] = mask_tokens(batch["input_ids"], self.tokenizer, special, self.probability)
        batch.pop("feature_index", None)
        return batch


CORPORA = ("sst2", "squad", "xquad_en", "drcd", "multi30k")


def _read_one(source: str, data_dir: str | None) -> list[str]:
    if source == "sst2":
        return [s for s, _ in read_tsv(data_path(data_dir, "sst2") / "train.tsv")]
    if source in ("squad", "xquad_en", "drcd"):
        articles = read_squad(dataset_file(source, data_dir))
        return [p["context"] for a in articles for p in a["paragraphs"]]
    if source == "multi30k":
        folder = require_files(data_path(data_dir, "multi30k"), ["train.en.gz"], "Multi30k",
                               "download Multi30k (github.com/multi30k/dataset, data/task1/raw/train.en.gz) into that folder")
        return read_lines(folder / "train.en.gz")
    path = Path(source).expanduser()
    if not path.is_file():
        raise LeedlError(f"task.data.corpus={source}: not one of {', '.join(CORPORA)}, an existing text file, "
                         f"or several of them joined by '+' (e.g. sst2+squad+multi30k)")
    return read_lines(path)


@data_reader("text corpus", "a plain UTF-8 text file, one sentence or paragraph per line (.gz allowed)")
def read_lines(path: str | Path) -> list[str]:
    """Non-empty lines of a UTF-8 text file (.gz read as gzip)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def read_corpus(source: str, data_dir: str | None) -> list[str]:
    """Lines of text: `sst2` (training sentences), `squad` (contexts of SQuAD dev), `xquad_en`, `drcd`,
    `multi30k` (the 29,000 English training captions), a text file path, or several joined by `+`
    (`sst2+squad+multi30k`: concatenated in that order)."""
    lines: list[str] = []
    for part in str(source).split("+"):
        lines.extend(_read_one(part.strip(), data_dir))
    return lines


def split_corpus(lines: list[str], corpus: str, max_lines: int | None, fractions) -> dict[str, list[str]]:
    """The lines of a corpus shuffled once (fixed seed), cut to `max_lines`, then split into train/val/test."""
    order = list(range(len(lines)))
    random.Random(SPLIT_SEED).shuffle(order)
    if max_lines:
        order = order[: int(max_lines)]
    if len(order) < 3:
        raise LeedlError(f"task.data.corpus={corpus}: {len(order)} lines, at least 3 needed (train/val/test)")
    parts = dict(zip(("train", "val", "test"), split_indices(len(order), fractions)))
    return {name: [lines[order[i]] for i in sorted(idx)] for name, idx in parts.items()}


@dataclass(frozen=True)
class TextSpec:
    """What the masked-LM corpus gives BERT and the pretraining task."""

    vocab_size: int           # the tokenizer's vocabulary (a random-init model is built with it)
    num_classes: None         # none: the labels are the masked tokens themselves
    tokenizer: Any            # saved with the pretrained model


Fraction = Annotated[float, Range(0, 1, high_open=True)]


def fraction_problems(options: dict) -> list[str]:
    """val_fraction + test_fraction must leave lines for training."""
    val, test = options.get("val_fraction"), options.get("test_fraction")
    if isinstance(val, (int, float)) and isinstance(test, (int, float)) and val + test >= 1:
        return [f"val_fraction={val}: expected val_fraction + test_fraction (= {val + test:g}) below 1"]
    return []


class TextDataModule(TokenizedDataModule):
    """Masked-LM pretraining data: lines of a corpus packed into blocks of `max_length` tokens."""

    def __init__(self, backbone: str = "minilm", corpus: str = "sst2", data_dir: str | None = None,
                 max_length: Annotated[int, Range(10)] = 64, batch_size: Annotated[int, AtLeastOne] = 64,
                 max_lines: Annotated[int, AtLeastOne] | None = None,
                 mask_probability: Annotated[float, OpenProbability] = 0.15, val_fraction: Fraction = 0.05,
                 test_fraction: Fraction = 0.05, vocab_size: Annotated[int, AtLeastOne] | None = None,
                 seed: int = 0) -> None:
        super().__init__()
        self.backbone, self.corpus, self.data_dir = backbone, corpus, data_dir
        self.vocab_size = int(vocab_size) if vocab_size else None
        self.max_length, self.batch_size, self.max_lines = int(max_length), int(batch_size), max_lines
        self.mask_probability, self.seed = mask_probability, seed
        self.fractions = (1 - val_fraction - test_fraction, val_fraction, test_fraction)
        self.tokenizer = None
        self.splits: dict[str, list[dict]] | None = None

    def _blocks(self, lines: list[str]) -> list[dict]:
        tok, body = self.tokenizer, self.max_length - 2
        ids: list[int] = []
        for enc in tok(lines, add_special_tokens=False)["input_ids"]:
            ids.extend(enc + [tok.sep_token_id])
        blocks = []
        for start in range(0, len(ids), body):
            chunk = ids[start:start + body]
            if len(chunk) >= 8:
                seq = [tok.cls_token_id] + chunk + [tok.sep_token_id]
                blocks.append({"input_ids": seq, "attention_mask": [1] * len(seq)})
        return blocks

    def setup(self, stage: str | None = None) -> None:
        if self.splits is not None:
            return
        text = split_corpus(read_corpus(self.corpus, self.data_dir), self.corpus, self.max_lines, self.fractions)
        if self.vocab_size:
            # BERT's own recipe: a WordPiece vocabulary learned from the pretraining corpus (its training split)
            vocab = Vocabulary.train_on_corpus(text["train"], self.corpus, "mlm", kind="wordpiece",
                                               vocab_size=self.vocab_size, lowercase=True)
            self.tokenizer = vocab.as_bert_tokenizer()
        else:
            self.tokenizer = load_pretrained_tokenizer(self.backbone)
        self.splits = {name: self._blocks(part) for name, part in text.items()}
        log.info("masked-LM corpus %s: %s blocks of <= %d tokens, vocabulary %d (%s)", self.corpus,
                 {k: len(v) for k, v in self.splits.items()}, self.max_length, len(self.tokenizer),
                 "WordPiece learned from the corpus" if self.vocab_size else f"the tokenizer of {self.backbone}")

    @classmethod
    def config_problems(cls, options: dict) -> list[str]:
        return fraction_problems(options)

    def provides(self) -> TextSpec:
        self.setup()
        return TextSpec(vocab_size=len(self.tokenizer), num_classes=None, tokenizer=self.tokenizer)

    @property
    def features(self) -> dict[str, list[dict]]:
        return self.splits or {}

    def _collator(self):
        return MLMCollator(self.tokenizer, self.mask_probability)


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
