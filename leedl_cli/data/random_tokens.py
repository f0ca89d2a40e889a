"""Random token sequences of one fixed length (synthetic): for measuring speed and memory against sequence
length (ch. 3, section 3.7: self-attention vs RNN), where the content of the data does not matter."""
from __future__ import annotations

import pytorch_lightning as pl
import torch


class RandomTokensDataModule(pl.LightningDataModule):
    def __init__(self, length: int = 128, batch_size: int = 16, vocab_size: int = 1000, num_classes: int = 17,
                 batches: int = 1, seed: int = 0) -> None:
        super().__init__()
        self.length, self.batch_size, self.vocab_size = int(length), int(batch_size), int(vocab_size)
        self.num_classes, self.batches, self.seed = int(num_classes), int(batches), seed

    def model_kwargs(self) -> dict:
        return {"vocab_size": self.vocab_size, "num_classes": self.num_classes, "num_labels": self.num_classes}

    def _batches(self) -> list[dict]:
        g = torch.Generator().manual_seed(self.seed)
        shape = (self.batch_size, self.length)
        return [{"input_ids": torch.randint(2, self.vocab_size, shape, generator=g),
                 "labels": torch.randint(0, self.num_classes, shape, generator=g)} for _ in range(self.batches)]

    def test_dataloader(self):
        from torch.utils.data import DataLoader

        return DataLoader(self._batches(), batch_size=None)   # the batches as they are
