"""A real preset's sweep, serial vs `hydra/launcher=joblib` with 2 workers: `experiment=batch_size_gap`
(MNIST MLP, batch sizes 64 / 256 / 6,000 x seeds 0-2: 9 jobs of 2 epochs).

Both are the `leedl run -m ...` command a user types, timed from start to exit in the same benchmark run
(start-up, worker start-up and all jobs included). Under joblib each job gets cores // n_jobs torch threads,
so two jobs on two cores do not oversubscribe. Target: speed-up >= 1.6.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
JOBS = ["experiment=batch_size_gap", "logger=csv", "trainer.enable_progress_bar=false"]


def sweep(extra: list[str]) -> tuple[float, list[dict]]:
    env = dict(os.environ, WANDB_MODE="offline", HF_HUB_OFFLINE="1", LEEDL_OFFLINE="1")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "leedl_cli.cli", "run", "-m", *JOBS, *extra,
                              f"output_root={tmp}"], cwd=REPO, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        if out.returncode != 0:
            raise SystemExit(f"sweep failed:\n{out.stderr[-3000:]}")
        results = [json.loads(p.read_text()) for p in sorted(Path(tmp).rglob("results.json"))]
    return seconds, results


def main() -> None:
    print(f"experiment=batch_size_gap (9 MNIST jobs), {os.cpu_count()} cores")
    serial, r_serial = sweep([])
    parallel, r_par = sweep(["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"])
    acc = lambda rs: f"{sum(r['metrics']['test/acc'] for r in rs) / len(rs):.4f} (mean of {len(rs)})"  # noqa: E731
    print(f"  serial          {serial:6.1f} s   threads/job {r_serial[0]['threads']}   test/acc {acc(r_serial)}")
    print(f"  joblib n_jobs=2 {parallel:6.1f} s   threads/job {r_par[0]['threads']}   test/acc {acc(r_par)}")
    print(f"  speed-up {serial / parallel:.2f} (target >= 1.6)")


if __name__ == "__main__":
    main()
