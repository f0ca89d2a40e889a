"""Reading a data file so that a damaged one is named: which file, what is wrong, how to get a good copy.

`with reading(path, "MNIST", how_to_get): ...` turns the errors a cut `.gz`, a JSON that ends mid-file, a
malformed line or an image that does not decode raise deep inside a parser into one CorruptDataError.
`leedl data check --verify` compares the known files against their published checksums (checksums.py).
"""
from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import json
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

from leedl_cli.errors import CorruptDataError

DAMAGE = (EOFError, gzip.BadGzipFile, zlib.error, json.JSONDecodeError, zipfile.BadZipFile, tarfile.TarError,
          UnicodeDecodeError, ValueError, IndexError, KeyError, OSError)


def _what(err: BaseException) -> str:
    if isinstance(err, EOFError) or "end of stream" in str(err).lower() or "truncated" in str(err).lower():
        return f"it ends too early (cut short while copying or downloading?): {err}"
    if isinstance(err, json.JSONDecodeError):
        return f"it is not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})"
    if isinstance(err, (gzip.BadGzipFile, zlib.error)):
        return f"it is not a valid gzip file: {err}"
    if isinstance(err, zipfile.BadZipFile):
        return f"it is not a valid zip file: {err}"
    if type(err).__name__ == "UnidentifiedImageError":
        return f"an image in it does not decode: {err}"
    return f"{type(err).__name__}: {err}"


@contextlib.contextmanager
def reading(path: str | Path, dataset: str, how_to_get: str) -> Iterator[Path]:
    """Read `path` inside the block; a damaged file becomes a CorruptDataError that names it and the fix."""
    path = Path(path)
    try:
        yield path
    except CorruptDataError:
        raise
    except FileNotFoundError:
        raise
    except DAMAGE as err:
        raise CorruptDataError(
            f"{dataset}: cannot read {path}: {_what(err)}.\n"
            f"To fix: replace it with a good copy ({how_to_get}); `leedl data check --verify` compares the "
            f"known files with their published checksums."
        ) from err
    except Exception as err:
        if type(err).__name__ in ("UnidentifiedImageError", "DecompressionBombError"):
            raise CorruptDataError(f"{dataset}: cannot read {path}: {_what(err)}.\nTo fix: replace it with a "
                                   f"good copy ({how_to_get}).") from err
        raise


def sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def data_reader(dataset: str, how_to_get: str) -> Callable:
    """Decorator for a function whose first argument is a data file: a damaged file is named (see `reading`)."""
    def decorate(read: Callable) -> Callable:
        @functools.wraps(read)
        def checked(path, *args, **kwargs):
            with reading(path, dataset, how_to_get):
                return read(path, *args, **kwargs)
        return checked
    return decorate
