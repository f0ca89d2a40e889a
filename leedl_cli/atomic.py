"""The one way leedl writes a file that must never be seen half-written: a temporary file beside the target,
flushed to disk, then renamed over it. A reader, a killed process or a full disk (ENOSPC) never leaves a cut file
in the target's place: the earlier file stays whole until the new one is complete. Imports nothing heavy."""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable


def replace_atomically(path: str | os.PathLike, write: Callable[[Any], None], newline: str | None = None,
                       binary: bool = False) -> Path:
    """Call `write(file)` on a temporary file beside `path` (text, or bytes with `binary=True`), then rename it
    over `path`. On any error the temporary file is removed and `path` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", newline=newline)) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def json_safe(value: Any) -> Any:
    """JSON-safe: NaN/inf become strings 'nan'/'inf' (JSON has no such numbers), tuples become lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    return replace_atomically(path, lambda f: f.write(text))


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    return replace_atomically(path, lambda f: f.write(data), binary=True)


def write_json_atomic(path: str | os.PathLike, data: Any) -> Path:
    return replace_atomically(path, lambda f: json.dump(json_safe(data), f, indent=2, sort_keys=False, default=str))


def write_csv_atomic(path: str | os.PathLike, fieldnames: list[str], rows: list[dict]) -> Path:
    import csv

    def write(f) -> None:
        writer = csv.DictWriter(f, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)

    return replace_atomically(path, write, newline="")


def save_npy_atomic(path: str | os.PathLike, array) -> Path:
    import numpy as np

    return replace_atomically(path, lambda f: np.save(f, array), binary=True)


def torch_save_atomic(obj: Any, path: str | os.PathLike) -> Path:
    import torch

    return replace_atomically(path, lambda f: torch.save(obj, f), binary=True)
