"""Shared fixtures: compose configs with Hydra's compose API and run them in-process into tmp dirs.

Offline everywhere: no wandb, no Hugging Face hub, no downloads.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):   # `make test` runs one worker per core: one torch thread each
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("LEEDL_OFFLINE", "1")
# derived data (built data sets, features, vocabularies) of this test session only
os.environ.setdefault("LEEDL_CACHE_DIR", tempfile.mkdtemp(prefix="leedl-test-cache-"))
REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
if "LEEDL_DATA_DIR" not in os.environ and SHARED_DATA.is_dir():
    os.environ["LEEDL_DATA_DIR"] = str(SHARED_DATA)


def compose(overrides: list[str] | None = None):
    """The composed config for `leedl run OVERRIDES` (with hydra's own node, as the CLI would see it)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from leedl_cli import resolvers  # noqa: F401
    from leedl_cli.paths import conf_dir

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides or []), return_hydra_config=True)


def run_overrides(overrides: list[str], run_dir: Path) -> dict:
    """Compose and run in-process (as `leedl run` would), writing into run_dir; returns results.json's content."""
    from omegaconf import open_dict

    from leedl_cli.run import train

    cfg = compose(overrides)
    choices = dict(cfg.hydra.runtime.choices)
    with open_dict(cfg):
        del cfg["hydra"]
    results = train(cfg, run_dir, overrides=overrides, choices=choices)
    if results["status"] == "ok":   # every run of every task says which weights its test used
        assert results.get("tested_weights"), "results.json has no tested_weights"
    return results


@pytest.fixture
def compose_cfg():
    return compose


@pytest.fixture
def run_leedl(tmp_path):
    """run_leedl(["task=digits", "debug=smoke"]) -> results dict; the run directory is tmp_path/run."""
    def _run(overrides: list[str], name: str = "run") -> dict:
        return run_overrides(overrides, tmp_path / name)
    return _run


def data_available(name: str) -> bool:
    from leedl_cli.paths import default_data_dir

    return (default_data_dir() / name).is_dir()
