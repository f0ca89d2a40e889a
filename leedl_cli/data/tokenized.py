"""The shared base of every tokenized-text data module (SQuAD, SST-2, UD CoNLL-U, the masked-LM corpus, ...).

No data-set family is imported here; every family imports from here (one direction of imports):
- `FeatureDataset`: a list of dicts (token id lists, ints, strings), `feature_index` added for evaluation;
- `PadCollator`: dynamic padding of the sequence keys a task names, each with its padding value; scalars
  become tensors; a key that is neither named, nor a scalar, nor explicitly kept or skipped is an error
  (nothing is dropped silently);
- `BucketBatchSampler`: length bucketing (sentences of similar length share a batch: less padding);
- `split_indices`: deterministic splits that never depend on the run's seed;
- `TokenizedDataModule`: train/val/test loaders over `self.features[split]`;
- `WordFeatureSizes`: the vocabulary sizes of the per-word features beside the word id (suffix, shape,
  characters), part of what a data module provides to the taggers trained from scratch.
"""
from __future__ import annotations

import random
from typing import Iterator, NamedTuple

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from leedl_cli.errors import LeedlError

SPLIT_SEED = 0  # splits never depend on the run's seed
IGNORE_INDEX = -100
# the padding values of the usual Hugging Face inputs (input_ids gets the tokenizer's pad id)
DEFAULT_PADS = {"input_ids": 0, "attention_mask": 0, "token_type_ids": 0, "labels_seq": IGNORE_INDEX}


class WordFeatureSizes(NamedTuple):
    """Vocabulary sizes of the features of each word beside its id (UD data from scratch): its last characters
    (`suffix_ids`), its shape (`shape_ids`), its characters (`char_ids`)."""

    suffix_vocab_size: int
    shape_vocab_size: int
    char_vocab_size: int


class FeatureDataset(Dataset):
    """A list of dicts of equal keys (token id lists, ints); `feature_index` is added for evaluation."""

    def __init__(self, features: list[dict]) -> None:
        self.features = features

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int) -> dict:
        return {**self.features[i], "feature_index": i}


class PadCollator:
    """Dynamic padding: every sequence key is padded to the longest sequence of *this* batch.

    `pads` names the sequence keys (lists, or lists of lists such as the characters of each word: padded in
    both dimensions) and their padding value (default: `DEFAULT_PADS`, input_ids padded with
    `pad_token_id`); ints/floats/bools become tensors; `keep` keys are passed through as Python lists
    (strings, words); `skip` keys are left out on purpose (e.g. QA offsets, looked up by feature_index).
    Any other key raises: a task must say what happens to each key.
    """

    SEQUENCE_KEYS = DEFAULT_PADS

    def __init__(self, pad_token_id: int = 0, pads: dict | None = None, keep: tuple = (), skip: tuple = ()) -> None:
        self.pad = dict(self.SEQUENCE_KEYS if pads is None else pads)
        if "input_ids" in self.pad:
            self.pad["input_ids"] = pad_token_id
        self.keep, self.skip = set(keep), set(skip)

    def __call__(self, items: list[dict]) -> dict:
        out = {}
        for key in items[0]:
            if key in self.skip:
                continue
            values = [it[key] for it in items]
            if key in self.pad:
                pad = self.pad[key]
                dtype = torch.float32 if isinstance(pad, float) else torch.long
                longest = max(len(v) for v in values)
                if any(v and isinstance(v[0], (list, tuple)) for v in values):   # nested: [words][characters]
                    inner = max((len(w) for v in values for w in v), default=1) or 1
                    rows = [[list(w) + [pad] * (inner - len(w)) for w in v] + [[pad] * inner] * (longest - len(v))
                            for v in values]
                    out[key] = torch.tensor(rows, dtype=dtype)
                    continue
                out[key] = torch.tensor([list(v) + [pad] * (longest - len(v)) for v in values], dtype=dtype)
            elif key in self.keep:
                out[key] = values
            elif isinstance(values[0], (bool, int)):
                out[key] = torch.tensor(values, dtype=torch.long)
            elif isinstance(values[0], float):
                out[key] = torch.tensor(values, dtype=torch.float32)
            else:
                raise LeedlError(f"collate: feature key {key!r} ({type(values[0]).__name__}) has no padding value; "
                                 f"name it in pads= (sequences), keep= (passed as lists) or skip= (left out)")
        return out


class BucketBatchSampler(Sampler):
    """Length bucketing: shuffle, cut into pools of `pool` batches, sort each pool by length, batch, shuffle
    the batches. Similar lengths share a batch (little padding) while the order still changes each epoch
    (a pure function of seed and epoch; Lightning calls `set_epoch`)."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int = 0, pool: int = 50,
                 shuffle: bool = True) -> None:
        self.lengths, self.batch_size, self.seed, self.pool = list(lengths), int(batch_size), int(seed), int(pool)
        self.shuffle, self.epoch = shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        rng = random.Random(self.seed * 100003 + self.epoch)
        order = list(range(len(self.lengths)))
        if self.shuffle:
            rng.shuffle(order)
        size = self.batch_size * self.pool
        batches = []
        for start in range(0, len(order), size):
            chunk = sorted(order[start:start + size], key=lambda i: self.lengths[i])
            batches += [chunk[k:k + self.batch_size] for k in range(0, len(chunk), self.batch_size)]
        if self.shuffle:
            rng.shuffle(batches)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._batches()
        if self.shuffle:
            self.epoch += 1      # without Lightning's set_epoch the next pass still differs
        return iter(batches)

    def __len__(self) -> int:
        return (len(self.lengths) + self.batch_size - 1) // self.batch_size


def split_indices(n: int, fractions: tuple[float, float, float], seed: int = SPLIT_SEED) -> tuple[list, list, list]:
    """Deterministic shuffled split of range(n) into train/val/test by the given fractions (each part >= 1)."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    n_val = max(1, round(n * fractions[1])) if n >= 3 else 0
    n_test = max(1, round(n * fractions[2])) if n >= 3 else 0
    return order[n_val + n_test:], order[:n_val], order[n_val:n_val + n_test]


class TokenizedDataModule(pl.LightningDataModule):
    """Loaders over lists of tokenized features: shuffled by the run's seed for training, dynamic padding.

    Subclasses set `self.tokenizer` (or override `_collator`), `self.batch_size` (and `self.eval_batch_size`,
    else the same) and hold `self.features[split]`. With `self.bucket_by` set to a sequence key, training
    batches are length-bucketed (`BucketBatchSampler`).
    """

    seed: int = 0
    bucket_by: str | None = None

    def _collator(self):
        return PadCollator(self.tokenizer.pad_token_id)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        batch_size = self.batch_size if shuffle else getattr(self, "eval_batch_size", self.batch_size)
        data = FeatureDataset(self.features[split])
        if shuffle and self.bucket_by:
            sampler = BucketBatchSampler([len(f[self.bucket_by]) for f in self.features[split]], batch_size,
                                         seed=self.seed)
            return DataLoader(data, batch_sampler=sampler, collate_fn=self._collator())
        gen = torch.Generator().manual_seed(self.seed) if shuffle else None
        return DataLoader(data, batch_size=batch_size, shuffle=shuffle, generator=gen, collate_fn=self._collator())

    def train_dataloader(self):
        return self._loader("train", True)

    def val_dataloader(self):
        return self._loader("val", False)

    def test_dataloader(self):
        return self._loader("test", False)
