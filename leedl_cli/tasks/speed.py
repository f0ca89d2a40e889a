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
from pathlib import Path
from typing import Annotated

import torch
import torch.nn.functional as F

from leedl_cli.contract import AtLeastOne, NonNegative
from leedl_cli.tasks.base import LeedlTask


def _logits(model, ids):
    out = model(input_ids=ids)
    return out.logits if hasattr(out, "logits") else out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(model, ids: torch.Tensor, labels: torch.Tensor, optimizer_factory, repeats: int = 5,
            warmup: int = 2) -> dict:
    """Time `repeats` training updates (after `warmup`) and count the bytes autograd saves for backward.

    Returns {"times_s": [...], "s_per_batch": median, "activation_mb": ..., "peak_mb": (CUDA only)}.
    """
    device = ids.device
    with torch.inference_mode(False), torch.enable_grad():
        ids, labels = ids.clone(), labels.clone()
        model.train()
        opt = optimizer_factory(model.parameters())
        saved = []

        def pack(t):
            saved.append(t.numel() * t.element_size())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            logits = _logits(model, ids)
        del logits
        activation_mb = sum(saved) / 2**20

        def update() -> None:
            logits = _logits(model, ids)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        for _ in range(warmup):
            update()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        times = []
        for _ in range(repeats):
            _sync(device)
            t0 = time.perf_counter()
            update()
            _sync(device)
            times.append(time.perf_counter() - t0)
    out = {"times_s": times, "s_per_batch": statistics.median(times), "activation_mb": activation_mb}
    if device.type == "cuda":
        out["peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


class SequenceSpeed(LeedlTask):
    def __init__(self, model, optimizer=None, scheduler=None, run_dir: Path | None = None,
                 repeats: Annotated[int, AtLeastOne] = 5, warmup: Annotated[int, NonNegative] = 2) -> None:
        super().__init__(model, optimizer, scheduler, run_dir=run_dir)
        self.repeats, self.warmup = int(repeats), int(warmup)

    def test_step(self, batch, batch_idx):
        ids, labels = batch["input_ids"], batch["labels"]
        m = measure(self.model, ids, labels, self.optimizer_factory, self.repeats, self.warmup)
        self.log("test/s_per_batch", m["s_per_batch"])
        self.log("test/tokens_per_s", ids.numel() / m["s_per_batch"])
        self.log("test/activation_mb", m["activation_mb"])
        if "peak_mb" in m:
            self.log("test/peak_mb", m["peak_mb"])
        self.results["speed"] = {"length": int(ids.shape[1]), "batch_size": int(ids.shape[0]), **m}
