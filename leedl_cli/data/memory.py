"""Batches of tensors held in memory, drawn by shuffled index: no DataLoader workers, no per-sample Python.

Lightning treats `InMemoryLoader` as any iterable of batches; it calls `sampler.set_epoch(epoch)`
before each epoch, so the shuffle is a pure function of (seed, epoch) and a resumed run sees the same
order. Under DDP each rank takes every world_size-th sample of the shared permutation (training: padded
by wrapping around so all ranks run the same number of updates; evaluation: each sample exactly once).
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
        self._yielded = 0                # batches handed out in the current pass (for state_dict)
        self.batches_trained: int | None = None   # set by a stop: Lightning fetches one batch ahead of training
        self._resume_at: tuple[int, int] | None = None

    @property
    def num_samples(self) -> int:
        return len(self.tensors[0])

    def _rank_samples(self) -> int:
        n, w = self.num_samples, self.world_size
        if w == 1:
            return n
        return math.ceil(n / w) if self.shuffle else len(range(self.rank, n, w))

    def __len__(self) -> int:
        m = self._rank_samples()
        return m // self.batch_size if self.drop_last else math.ceil(m / self.batch_size)

    def _order(self) -> torch.Tensor | None:
        """This rank's sample indices (None: all samples in order, read by slicing)."""
        n, w = self.num_samples, self.world_size
        order = None
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed * 100_003 + self.sampler.epoch)
            order = torch.randperm(n, generator=gen)
        if w == 1:
            return order
        if order is None:
            return torch.arange(self.rank, n, w)      # evaluation: every sample once over all ranks
        padded = torch.cat([order, order[: math.ceil(n / w) * w - n]])   # training: equal counts per rank
        return padded[self.rank::w]

    # The state of a pass, for a checkpoint written mid-epoch (a stopped run): the data module keeps it and
    # gives it back on resume, and the interrupted epoch goes on with the batch after the last one trained.
    def state_dict(self) -> dict:
        done = self._yielded if self.batches_trained is None else self.batches_trained
        if done >= len(self):   # a whole pass: what comes next is the next epoch's first batch
            return {"epoch": self.sampler.epoch + 1, "batches": 0}
        return {"epoch": self.sampler.epoch, "batches": done}

    def load_state_dict(self, state: dict) -> None:
        self._resume_at = (int(state["epoch"]), int(state["batches"]))

    def __iter__(self):
        start = 0
        if self._resume_at is not None:   # the stopped epoch's order, from the batch after the last trained
            self.sampler.epoch, start = self._resume_at
        self._resume_at = None
        order = self._order()
        m = self._rank_samples()
        self._yielded, self.batches_trained = start, None
        for b in range(start, len(self)):
            self._yielded = b + 1
            lo, hi = b * self.batch_size, min((b + 1) * self.batch_size, m)
            if order is None:
                yield tuple(t[lo:hi] for t in self.tensors)
            else:
                idx = order[lo:hi]
                yield tuple(t[idx] for t in self.tensors)
