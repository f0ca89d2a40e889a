"""Training throughput (samples/s) of one MNIST epoch, three columns measured in the same run:

- plain: a plain PyTorch loop;
- bare Lightning: a minimal LightningModule (forward, cross-entropy, the optimizer) on the same in-memory
  batches, in a Trainer with nothing switched on: Lightning's own cost per step;
- leedl: `leedl run` as a user would for speed (no external logger, no checkpoints, no progress bar, no
  validation pass); metrics.csv logging and the accuracy tally stay on.

Same model (built from the same config), batch size, data, optimizer, learning-rate schedule (the task's
`warmup_cosine`, stepped every update in all three) and threads. Each is measured several times (MLP 6, CNN 3)
in rounds of plain, bare, leedl back to back; the ratios are the median over rounds of the ratio within a round
(robust to a busy moment of a shared machine), the ratio of the best rounds beside it. Targets: leedl >= 0.95
of bare Lightning (MLP and CNN), and the CNN >= 0.9 of plain PyTorch.
"""
from __future__ import annotations

import sys

import torch
import torch.nn.functional as F
from common import Timer, build_plain, run_leedl

BATCH = 128
# plain and leedl alternate; the best of each is kept (the machine is shared, timings are noisy); an MLP epoch
# takes ~1 s, so it gets more tries
REPEATS = {"mlp": 6, "cnn": 3}


def schedule(cfg, optimizer, total_steps: int):
    """The task's learning-rate schedule over one epoch, as leedl builds it (stepped after every update)."""
    from leedl_cli.tasks.base import build_scheduler

    scheduler, interval = build_scheduler(cfg.scheduler, optimizer, total_steps)
    assert scheduler is not None and interval == "step", "task=mnist's schedule is per update"
    return scheduler


def plain_epoch(model_name: str, seed: int = 0) -> float:
    import os

    cfg, dm, model, make_optimizer = build_plain(["task=mnist", f"model={model_name}", f"seed={seed}"], seed)
    opt = make_optimizer(model.parameters())
    x, y = dm.train
    sched = schedule(cfg, opt, -(-len(x) // BATCH))
    n = len(x)
    model.train()
    # a plain PyTorch user never imports Lightning, which sets this variable process-wide (see run.py)
    nvml_check = os.environ.pop("PYTORCH_NVML_BASED_CUDA_CHECK", None)
    with Timer() as t:
        order = torch.randperm(n)
        for i in range(0, n, BATCH):
            idx = order[i:i + BATCH]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    if nvml_check is not None:
        os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = nvml_check
    return n / t.seconds


def bare_lightning_epoch(model_name: str, seed: int = 0) -> float:
    import time

    import pytorch_lightning as pl

    from leedl_cli.data.memory import InMemoryLoader

    cfg, dm, model, make_optimizer = build_plain(["task=mnist", f"model={model_name}", f"seed={seed}"], seed)

    class Bare(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = model

        def training_step(self, batch, batch_idx):
            x, y = batch
            return F.cross_entropy(self.model(x), y)

        def configure_optimizers(self):
            opt = make_optimizer(self.parameters())
            sched = schedule(cfg, opt, -(-len(dm.train[0]) // BATCH))
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    class EpochTime(pl.Callback):
        def on_train_epoch_start(self, trainer, module):
            self.start = time.perf_counter()

        def on_train_epoch_end(self, trainer, module):
            self.seconds = time.perf_counter() - self.start

    timer = EpochTime()
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[timer])
    trainer.fit(Bare(), train_dataloaders=InMemoryLoader(*dm.train, batch_size=BATCH, shuffle=True, seed=seed))
    return len(dm.train[0]) / timer.seconds


def leedl_epoch(model_name: str, seed: int = 0) -> float:
    r = run_leedl(["task=mnist", f"model={model_name}", f"seed={seed}", "logger=none", "callbacks=none",
                   f"task.data.batch_size={BATCH}", "trainer.max_epochs=1", "trainer.limit_val_batches=0",
                   "trainer.enable_progress_bar=false", "++task.test=false"])
    assert r["status"] == "ok", r.get("error")
    samples = 55_000
    return samples / r["timings"]["per_epoch_s"]


def main() -> None:
    import statistics

    models = sys.argv[1:] or ["mlp", "cnn"]
    print(f"MNIST, one epoch (55,000 images), batch {BATCH}, torch threads {torch.get_num_threads()}")
    print("  samples/s: the best round of each column; ratios: the median over rounds of the ratio within a round\n"
          "  (the three columns of a round run back to back, so a busy moment of the machine hits all three),\n"
          "  then in brackets the ratio of the best rounds")
    print(f"  {'':<4} {'plain':>9} {'bare Lightning':>15} {'leedl':>9}   leedl/bare            leedl/plain")
    for name in models:
        rounds = [(plain_epoch(name), bare_lightning_epoch(name), leedl_epoch(name))
                  for _ in range(REPEATS.get(name, 3))]
        plain, bare, ours = (max(r[i] for r in rounds) for i in range(3))
        vs_bare = statistics.median(r[2] / r[1] for r in rounds)
        vs_plain = statistics.median(r[2] / r[0] for r in rounds)
        target = " (target >= 0.9)" if name == "cnn" else ""
        print(f"  {name:<4} {plain:9.0f} {bare:15.0f} {ours:9.0f}   {vs_bare:5.2f} [{ours / bare:4.2f}] (target >= 0.95)"
              f"   {vs_plain:5.2f} [{ours / plain:4.2f}]{target}")


if __name__ == "__main__":
    main()
