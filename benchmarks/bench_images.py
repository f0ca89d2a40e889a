"""Training throughput (samples/s) of one MNIST epoch: leedl (Lightning) vs a plain PyTorch loop, same run.

Same model (built from the same config), same batch size, data in memory, same optimizer, same threads. leedl
runs as a user would for speed (no external logger, no checkpoints, no progress bar, no validation pass);
metrics.csv logging and torchmetrics accuracy stay on. Each is measured several times (MLP 6, CNN 3), alternating, best kept.
Target: ratio >= 0.9.
"""
from __future__ import annotations

import sys

import torch
import torch.nn.functional as F
from common import Timer, compose, run_leedl

BATCH = 128
# plain and leedl alternate; the best of each is kept (the machine is shared, timings are noisy); an MLP epoch
# takes ~1 s, so it gets more tries
REPEATS = {"mlp": 6, "cnn": 3}


def plain_epoch(model_name: str, seed: int = 0) -> float:
    import os

    import hydra

    from leedl_cli.run import build_model

    cfg = compose(["task=mnist", f"model={model_name}", f"seed={seed}"])
    dm = hydra.utils.instantiate(cfg.task.data)
    dm.setup()
    torch.manual_seed(seed)
    model = build_model(cfg, dm.model_kwargs())
    opt = hydra.utils.instantiate(cfg.optimizer)(model.parameters())
    x, y = dm.train
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
    if nvml_check is not None:
        os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = nvml_check
    return n / t.seconds


def leedl_epoch(model_name: str, seed: int = 0) -> float:
    r = run_leedl(["task=mnist", f"model={model_name}", f"seed={seed}", "logger=none", "callbacks=none",
                   f"task.data.batch_size={BATCH}", "trainer.max_epochs=1", "trainer.limit_val_batches=0",
                   "trainer.enable_progress_bar=false", "++task.test=false"])
    assert r["status"] == "ok", r.get("error")
    samples = 55_000
    return samples / r["timings"]["per_epoch_s"]


def main() -> None:
    models = sys.argv[1:] or ["mlp", "cnn"]
    print(f"MNIST, one epoch (55,000 images), batch {BATCH}, torch threads {torch.get_num_threads()}")
    for name in models:
        plain = ours = 0.0
        for _ in range(REPEATS.get(name, 3)):
            plain = max(plain, plain_epoch(name))
            ours = max(ours, leedl_epoch(name))
        print(f"  {name:<4} plain PyTorch {plain:9.0f} samples/s   leedl {ours:9.0f} samples/s   "
              f"ratio {ours / plain:.2f} (target >= 0.9)")


if __name__ == "__main__":
    main()
