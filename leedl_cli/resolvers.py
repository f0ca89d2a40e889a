"""OmegaConf resolvers leedl's configs use. Light: imported by the CLI before Hydra composes."""
from __future__ import annotations

import os
import secrets

from omegaconf import OmegaConf


def _uid() -> str:
    """A short id that makes run directories unique even for jobs started in the same second."""
    return f"{os.getpid() % 10000:04d}{secrets.token_hex(2)}"


def register() -> None:
    if not OmegaConf.has_resolver("leedl_uid"):
        OmegaConf.register_new_resolver("leedl_uid", _uid, use_cache=True)


register()
