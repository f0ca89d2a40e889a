""""Did you mean ...?" for a key or a config group that does not exist, from the keys of the composed config."""
from __future__ import annotations

import difflib
import re
from typing import Any

from omegaconf import DictConfig, OmegaConf

UNKNOWN_KEY = re.compile(r"Could not (?:override|append to) '([^']+)'|Key '([^']+)' is not in struct")


def dotted_keys(node: Any, prefix: str = "") -> list[str]:
    """Every key of a config as a dotted path (`trainer.max_epochs`), groups and leaves alike."""
    if isinstance(node, DictConfig):
        node = OmegaConf.to_container(node, resolve=False)
    out = []
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            out.append(path)
            out += dotted_keys(value, path)
    return out


def unknown_key(message: str) -> str | None:
    """The key Hydra could not set, from its error message."""
    m = UNKNOWN_KEY.search(message)
    return (m.group(1) or m.group(2)) if m else None


def did_you_mean(key: str, cfg: DictConfig, groups: list[str]) -> str:
    """One line for an override of a key the config does not have: the closest existing keys, else what exists
    at that level (and the config groups)."""
    keys = list(dict.fromkeys([k for k in dotted_keys(cfg) if not k.startswith("hydra")] + list(groups)))
    parent = key.rpartition(".")[0]
    siblings = [k for k in keys if k.rpartition(".")[0] == parent]
    close = difflib.get_close_matches(key, siblings or keys, n=3, cutoff=0.75) or \
        difflib.get_close_matches(key, keys, n=3, cutoff=0.8)
    if close:
        return f"{key}: no such key; did you mean {' or '.join(close)}? (+{key}=... adds a new key)"
    if not parent:
        return f"{key}: no such key or config group; config groups: {', '.join(groups)}"
    options = sorted(k.rpartition(".")[2] for k in siblings)
    return f"{key}: no such key; {parent} has: {', '.join(options)}"
