"""Random token sequences of one fixed length (synthetic): for measuring speed and memory against sequence
length (ch. 3, section 3.7: self-attention vs RNN), where the content of the data does not matter.

What it provides (`RandomTokensSpec`): the vocabulary and class counts and the reserved ids (0 = padding, 1 =
unknown: the random tokens are drawn from 2 .. vocab_size - 1); no per-word features.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import pytorch_lightning as pl
import torch

from leedl_cli.contract import AtLeastOne, Range
from leedl_cli.data.tokenized import WordFeatureSizes

PAD_ID, UNK_ID = 0, 1


@dataclass(frozen=True)
class RandomTokensSpec:
    vocab_size: int
    num_classes: int
    pad_token_id: int
    unk_token_id: int
    word_features: WordFeatureSizes | None     # none: token ids only


class RandomTokensDataModule(pl.LightningDataModule):
    def __init__(self, length: Annotated[int, AtLeastOne] = 128, batch_size: Annotated[int, AtLeastOne] = 16,
                 vocab_size: Annotated[int, Range(3)] = 1000, num_classes: Annotated[int, AtLeastOne] = 17,
                 batches: Annotated[int, AtLeastOne] = 1, seed: int = 0) -> None:
        super().__init__()
        self.length, self.batch_size, self.vocab_size = int(length), int(batch_size), int(vocab_size)
        self.num_classes, self.batches, self.seed = int(num_classes), int(batches), seed

    def provides(self) -> RandomTokensSpec:
        return RandomTokensSpec(vocab_size=self.vocab_size, num_classes=self.num_classes, pad_token_id=PAD_ID,
                                unk_token_id=UNK_ID, word_features=None)

    def _batches(self) -> list[dict]:
        g = torch.Generator().manual_seed(self.seed)
        shape = (self.batch_size, self.length)
        return [{"input_ids": torch.randint(UNK_ID + 1, self.vocab_size, shape, generator=g),
                 "labels": torch.randint(0, self.num_classes, shape, generator=g)} for _ in range(self.batches)]

    def test_dataloader(self):
        from torch.utils.data import DataLoader

        return DataLoader(self._batches(), batch_size=None)   # the batches as they are
