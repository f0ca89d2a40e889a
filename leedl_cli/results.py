"""results.json: what every run leaves behind for `leedl report`. Written atomically. Imports nothing heavy."""
from __future__ import annotations

import json
import os
from pathlib import Path

from leedl_cli.atomic import json_safe, replace_atomically, write_csv_atomic, write_json_atomic  # noqa: F401

RESULTS_FILE = "results.json"


def read_results(path: str | os.PathLike) -> dict:
    with open(path) as f:
        return json.load(f)


def find_results(root: str | os.PathLike) -> list[Path]:
    """Every results.json at or below `root` (a run, a sweep, or a folder of sweeps), in a stable order."""
    root = Path(root)
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob(RESULTS_FILE) if p.is_file())
