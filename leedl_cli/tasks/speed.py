"""Seconds per training batch and memory against sequence length (ch. 3, section 3.7): `task=sequence_speed`.

The book: an RNN must process the positions one after another, self-attention computes all of them at once
(parallel), but its attention matrix has L x L entries, so its memory grows with L^2. This task trains
nothing: on a batch of random tokens of length `task.data.length` it times `repeats` full training updates
(forward, backward, optimizer step) of the chosen model after `warmup` untimed ones, and measures the memory
of what the forward pass keeps for the backward pass (the activations: every tensor autograd saves, counted
with saved-tensor hooks — exact and device-independent) and, on a GPU, the peak allocated memory.
Logged as test/s_per_batch (median), test/tokens_per_s, test/activation_mb (and test/peak_mb on CUDA).
"""
from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

from leedl_cli.tasks.base import LeedlTask


class SequenceSpeed(LeedlTask):
    def __init__(self, model, optimizer=None, scheduler=None, repeats: int = 5, warmup: int = 2) -> None:
        super().__init__(model, optimizer, scheduler)
        self.repeats, self.warmup = int(repeats), int(warmup)

    def _update(self, opt, ids, labels) -> None:
        out = self.model(input_ids=ids)
        logits = out.logits if hasattr(out, "logits") else out
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def test_step(self, batch, batch_idx):
        ids, labels = batch["input_ids"].clone(), batch["labels"].clone()
        with torch.inference_mode(False), torch.enable_grad():
            ids, labels = ids.clone(), labels.clone()
            self.model.train()
            opt = self.optimizer_factory(self.model.parameters())
            saved = []

            def pack(t):
                saved.append(t.numel() * t.element_size())
                return t

            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                out = self.model(input_ids=ids)
                logits = out.logits if hasattr(out, "logits") else out
            activation_mb = sum(saved) / 2**20
            del out, logits
            for _ in range(self.warmup):
                self._update(opt, ids, labels)
            if self.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            times = []
            for _ in range(self.repeats):
                self._sync()
                t0 = time.perf_counter()
                self._update(opt, ids, labels)
                self._sync()
                times.append(time.perf_counter() - t0)
        s = statistics.median(times)
        self.log("test/s_per_batch", s)
        self.log("test/tokens_per_s", ids.numel() / s)
        self.log("test/activation_mb", activation_mb)
        if self.device.type == "cuda":
            self.log("test/peak_mb", torch.cuda.max_memory_allocated() / 2**20)
        self.results["speed"] = {"length": int(ids.shape[1]), "batch_size": int(ids.shape[0]), "times_s": times,
                                 "activation_mb": activation_mb}
