"""Where leedl finds its configs and data. Imports nothing heavy."""
from __future__ import annotations

import os
from pathlib import Path

from leedl_cli.errors import DataNotFoundError

PACKAGE_DIR = Path(__file__).resolve().parent


def conf_dir() -> Path:
    """The `conf/` folder: top level in a source checkout (editable install), inside the package in a wheel."""
    for candidate in (PACKAGE_DIR.parent / "conf", PACKAGE_DIR / "conf"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"leedl's conf/ folder is missing next to {PACKAGE_DIR}; reinstall leedl")


def default_data_dir() -> Path:
    """`$LEEDL_DATA_DIR` when set, else `~/.cache/leedl/data` (where downloads go)."""
    env = os.environ.get("LEEDL_DATA_DIR")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "leedl" / "data"


def downloads_allowed() -> bool:
    """False when the user said the machine is offline (LEEDL_OFFLINE=1 or HF_HUB_OFFLINE=1)."""
    return not any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("LEEDL_OFFLINE", "HF_HUB_OFFLINE"))


def data_path(root: str | os.PathLike | None, name: str) -> Path:
    """The folder of data set `name` under `root` (None -> the default data dir)."""
    base = Path(root).expanduser() if root else default_data_dir()
    return base / name


def require_files(folder: Path, files: list[str], dataset: str, how_to_get: str) -> Path:
    """Return `folder` if every file is there, else raise a DataNotFoundError naming the paths and the fix."""
    missing = [f for f in files if not (folder / f).exists()]
    if missing:
        raise DataNotFoundError(
            f"{dataset} not found: looked for {', '.join(str(folder / f) for f in missing)}.\n"
            f"To fix: {how_to_get}\n"
            f"Or point leedl at a folder that has it: LEEDL_DATA_DIR=/path/to/data or data_dir=/path/to/data "
            f"(leedl looks in <data_dir>/{folder.name})."
        )
    return folder


def cache_dir(*parts: str) -> Path:
    """A writable folder for things leedl derives from data (built data sets, features, vocabularies).

    `$LEEDL_CACHE_DIR` when set, else `~/.cache/leedl/cache`: never inside the data folder, which may be a
    read-only mirror. Callers key what they store by everything it depends on (data set, options, a checksum).
    """
    env = os.environ.get("LEEDL_CACHE_DIR")
    base = Path(env).expanduser() if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "leedl" / "cache"
    folder = base.joinpath(*parts)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
