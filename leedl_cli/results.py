"""results.json: what every run leaves behind for `leedl report`. Written atomically. Imports nothing heavy."""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

RESULTS_FILE = "results.json"
SWEEP_STATUSES: list[str] = []   # filled after `leedl run -m` from the sweep's results.json files


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf become strings 'nan'/'inf' (JSON has no such numbers), tuples become lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def replace_atomically(path: str | os.PathLike, write, newline: str | None = None) -> Path:
    """Call `write(file)` on a temporary file beside `path`, then rename it over `path`: readers (and a
    process killed meanwhile) never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline=newline) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path: str | os.PathLike, data: dict) -> Path:
    return replace_atomically(path, lambda f: json.dump(_clean(data), f, indent=2, sort_keys=False, default=str))


def write_csv_atomic(path: str | os.PathLike, fieldnames: list[str], rows: list[dict]) -> Path:
    import csv

    def write(f) -> None:
        writer = csv.DictWriter(f, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)

    return replace_atomically(path, write, newline="")


def read_results(path: str | os.PathLike) -> dict:
    with open(path) as f:
        return json.load(f)


def find_results(root: str | os.PathLike) -> list[Path]:
    """Every results.json at or below `root` (a run, a sweep, or a folder of sweeps), in a stable order."""
    root = Path(root)
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob(RESULTS_FILE) if p.is_file())
