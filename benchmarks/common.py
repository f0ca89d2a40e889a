"""Helpers shared by the benchmarks: compose a leedl config and run it in-process, offline, into a temp dir."""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LEEDL_OFFLINE", "1")
_shared = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if "LEEDL_DATA_DIR" not in os.environ and _shared.is_dir():
    os.environ["LEEDL_DATA_DIR"] = str(_shared)


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from leedl_cli import resolvers  # noqa: F401
    from leedl_cli.paths import conf_dir

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=overrides)


def run_leedl(overrides: list[str]) -> dict:
    from leedl_cli.run import train

    with tempfile.TemporaryDirectory() as tmp:
        return train(compose(overrides), Path(tmp) / "run", overrides=overrides)


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def build_plain(overrides: list[str], seed: int = 0):
    """What a plain PyTorch reference starts from: (cfg, set-up data module, model, optimizer factory), built from
    the same config leedl uses, the model initialised under `seed`."""
    import hydra
    import torch

    from leedl_cli.run import build_model

    cfg = compose(overrides)
    dm = hydra.utils.instantiate(cfg.task.data)
    dm.setup()
    torch.manual_seed(seed)
    model = build_model(cfg, dm.model_kwargs())
    return cfg, dm, model, hydra.utils.instantiate(cfg.optimizer)
