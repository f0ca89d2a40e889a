"""Shared pieces of the BERT data modules: dynamic padding, feature datasets, deterministic splits.

Also the masked-LM data module (`TextDataModule`): any text corpus (SQuAD contexts, SST-2 sentences,
a plain text file) cut into blocks of `max_length` tokens with the backbone's tokenizer; the masking
(15% of tokens chosen; of those 80% [MASK], 10% a random token, 10% unchanged) happens per batch.
"""
from __future__ import annotations

import logging
import os
import random
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from leedl_cli.errors import LeedlError

log = logging.getLogger(__name__)
SPLIT_SEED = 0  # splits never depend on the run's seed
IGNORE_INDEX = -100


class FeatureDataset(Dataset):
    """A list of dicts of equal keys (token id lists, ints); `feature_index` is added for evaluation."""

    def __init__(self, features: list[dict]) -> None:
        self.features = features

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int) -> dict:
        return {**self.features[i], "feature_index": i}


class PadCollator:
    """Dynamic padding: pad every sequence key to the longest sequence of *this* batch."""

    SEQUENCE_KEYS = {"input_ids": None, "attention_mask": 0, "token_type_ids": 0, "labels_seq": IGNORE_INDEX}

    def __init__(self, pad_token_id: int = 0) -> None:
        self.pad = dict(self.SEQUENCE_KEYS, input_ids=pad_token_id)

    def __call__(self, items: list[dict]) -> dict:
        out = {}
        for key in items[0]:
            values = [it[key] for it in items]
            if key in self.pad:
                longest = max(len(v) for v in values)
                out[key] = torch.tensor([list(v) + [self.pad[key]] * (longest - len(v)) for v in values],
                                        dtype=torch.long)
            elif isinstance(values[0], (int, bool)):
                out[key] = torch.tensor(values, dtype=torch.long)
        return out


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


def split_indices(n: int, fractions: tuple[float, float, float], seed: int = SPLIT_SEED) -> tuple[list, list, list]:
    """Deterministic shuffled split of range(n) into train/val/test by the given fractions (each part >= 1)."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    n_val = max(1, round(n * fractions[1])) if n >= 3 else 0
    n_test = max(1, round(n * fractions[2])) if n >= 3 else 0
    return order[n_val + n_test:], order[:n_val], order[n_val:n_val + n_test]


def read_corpus(source: str, data_dir: str | None) -> list[str]:
    """Lines of text: `sst2` (training sentences), `squad` (contexts of SQuAD dev), or a text file path."""
    from leedl_cli.paths import data_path

    if source == "sst2":
        from leedl_cli.data.sst2 import read_tsv

        return [s for s, _ in read_tsv(data_path(data_dir, "sst2") / "train.tsv")]
    if source in ("squad", "xquad_en", "drcd"):
        from leedl_cli.data.squad import dataset_file, read_squad

        articles = read_squad(dataset_file(source, data_dir))
        return [p["context"] for a in articles for p in a["paragraphs"]]
    path = Path(source).expanduser()
    if not path.is_file():
        raise LeedlError(f"task.data.corpus={source}: not sst2, squad, xquad_en, drcd or an existing text file")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class TokenizedDataModule(pl.LightningDataModule):
    """Loaders over lists of tokenized features: shuffled by the run's seed for training, dynamic padding.

    Subclasses set `self.tokenizer`, `self.batch_size` (and `self.eval_batch_size`, else the same) and hold
    `self.features[split]`; they may change how a batch is collated (`_collator`).
    """

    seed: int = 0

    def _collator(self):
        return PadCollator(self.tokenizer.pad_token_id)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        gen = torch.Generator().manual_seed(self.seed) if shuffle else None
        batch_size = self.batch_size if shuffle else getattr(self, "eval_batch_size", self.batch_size)
        return DataLoader(FeatureDataset(self.features[split]), batch_size=batch_size, shuffle=shuffle,
                          generator=gen, collate_fn=self._collator())

    def train_dataloader(self):
        return self._loader("train", True)

    def val_dataloader(self):
        return self._loader("val", False)

    def test_dataloader(self):
        return self._loader("test", False)


class TextDataModule(TokenizedDataModule):
    """Masked-LM pretraining data: lines of a corpus packed into blocks of `max_length` tokens."""

    def __init__(self, backbone: str = "minilm", corpus: str = "sst2", data_dir: str | None = None,
                 max_length: int = 64, batch_size: int = 64, max_lines: int | None = None,
                 mask_probability: float = 0.15, val_fraction: float = 0.05, test_fraction: float = 0.05,
                 seed: int = 0) -> None:
        super().__init__()
        self.backbone, self.corpus, self.data_dir = backbone, corpus, data_dir
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
        from leedl_cli.models.bert import load_tokenizer

        self.tokenizer = load_tokenizer(self.backbone)
        lines = read_corpus(self.corpus, self.data_dir)
        order = list(range(len(lines)))
        random.Random(SPLIT_SEED).shuffle(order)
        if self.max_lines:
            order = order[: int(self.max_lines)]
        tr, va, te = split_indices(len(order), self.fractions)
        self.splits = {name: self._blocks([lines[order[i]] for i in sorted(part)])
                       for name, part in (("train", tr), ("val", va), ("test", te))}
        log.info("masked-LM corpus %s: %s blocks of <= %d tokens", self.corpus,
                 {k: len(v) for k, v in self.splits.items()}, self.max_length)

    def model_kwargs(self) -> dict:
        self.setup()
        return {"head": "mlm", "vocab_size": len(self.tokenizer)}

    @property
    def features(self) -> dict[str, list[dict]]:
        return self.splits or {}

    def _collator(self):
        return MLMCollator(self.tokenizer, self.mask_probability)


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
