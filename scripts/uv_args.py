"""Print uv's flags for the package sources pip is configured with here (find-links, local indexes, constraints).

uv does not read pip's configuration. This reads `pip config list` and passes on only the folders and files that
exist, so the same Makefile works on a machine with local wheel folders and on one without.
"""
from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse


def pip_config() -> dict[str, str]:
    try:
        out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                             timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    conf: dict[str, str] = {}
    for line in out.splitlines():
        key, _, value = line.partition("=")
        conf.setdefault(key.split(".")[-1], value.strip().strip("'\""))
    return conf


def exists(location: str) -> bool:
    if "://" in location:
        parsed = urlparse(location)
        return parsed.scheme != "file" or Path(parsed.path).exists()
    return Path(location).exists()


def main() -> None:
    conf = pip_config()
    args: list[str] = []
    for key, flag in (("find-links", "--find-links"), ("extra-index-url", "--extra-index-url"),
                      ("constraint", "--constraint")):
        for value in conf.get(key, "").split():
            if exists(value):
                args += [flag, value]
    if args:   # local indexes hold only some versions: let uv pick the best match over all sources
        args += ["--index-strategy", "unsafe-best-match"]
    print(" ".join(shlex.quote(a) for a in args))


if __name__ == "__main__":
    main()
