"""A DDP process other than rank 0: `python -m leedl_cli.ddp_worker CONFIG RUN_DIR` (started by run.ddp_children).

It trains the same resolved config in the same run directory; Lightning's environment variables (LOCAL_RANK,
WORLD_SIZE, MASTER_ADDR/PORT) make it join rank 0's process group. Only rank 0 writes results and logs.
"""
from __future__ import annotations

import sys

from omegaconf import OmegaConf


def main(argv: list[str]) -> int:
    from leedl_cli.run import train

    config_file, run_dir = argv
    cfg = OmegaConf.load(config_file)
    results = train(cfg, run_dir, checked=True)
    return 0 if results["status"] != "failed" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
