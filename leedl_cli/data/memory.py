"""Batches of tensors held in memory, drawn by shuffled index: no DataLoader workers, no per-sample Python.

Lightning treats `InMemoryLoader` as any iterable of batches; it calls `sampler.set_epoch(epoch)`
before each epoch, so the shuffle is a pure function of (seed, epoch) and a resumed run sees the same
order. Under DDP each rank takes every world_size-th batch of the shared permutation.
"""
from __future__ import annotations

import math

import torch


class _EpochSampler:
    def __init__(self) -> None:
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch


class InMemoryLoader:
    def __init__(
        self,
        *tensors: torch.Tensor,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not tensors or any(len(t) != len(tensors[0]) for t in tensors):
            raise ValueError("InMemoryLoader needs tensors of equal length")
        self.tensors = tensors
        self.batch_size = max(1, min(int(batch_size), len(tensors[0])))
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        self.rank, self.world_size = rank, world_size
        self.sampler = _EpochSampler()   # Lightning calls sampler.set_epoch(epoch) before each epoch
        self.batch_sampler = None

    @property
    def num_samples(self) -> int:
        return len(self.tensors[0])

    def _num_batches_total(self) -> int:
        n = self.num_samples
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __len__(self) -> int:
        return len(range(self.rank, self._num_batches_total(), self.world_size))

    def __iter__(self):
        n = self.num_samples
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed * 100_003 + self.sampler.epoch)
            order = torch.randperm(n, generator=gen)
        else:
            order = None
        for b in range(self.rank, self._num_batches_total(), self.world_size):
            lo, hi = b * self.batch_size, min((b + 1) * self.batch_size, n)
            if order is None:
                yield tuple(t[lo:hi] for t in self.tensors)
            else:
                idx = order[lo:hi]
                yield tuple(t[idx] for t in self.tensors)
