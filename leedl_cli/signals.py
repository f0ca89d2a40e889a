"""Stopping a run on SIGTERM, SIGINT or SIGUSR1 without losing it.

What sends them: SLURM, Kubernetes and `docker stop` send SIGTERM; Ctrl-C sends SIGINT; SLURM's warning signal
before the time limit (`sbatch --signal=USR1@120`) is SIGUSR1. While a run is on, leedl catches them: training
stops at the end of the current batch, the current state is written as a checkpoint, results.json records
`"status": "interrupted"` with the signal and the step, and `leedl run` exits with 128 + the signal's number
(143, 130, 138). `resume=auto` (or `resume=RUN_DIR`) continues the run; `skip_done=true` runs it again in a
re-run sweep. A second signal while stopping stops at once (no checkpoint).
"""
from __future__ import annotations

import logging
import os
import signal
import threading

import pytorch_lightning as pl

from leedl_cli.compat import log_step_metrics_now

log = logging.getLogger("leedl")

CAUGHT = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)


class Interrupted(Exception):
    """Raised inside the training loop once a caught signal has been handled (checkpoint written)."""

    def __init__(self, signum: int, step: int | None = None, checkpoint: str | None = None) -> None:
        self.signum, self.step, self.checkpoint = int(signum), step, checkpoint
        super().__init__(f"stopped by {signal.Signals(signum).name} at step {step}")


def exit_code(signum: int) -> int:
    return 128 + int(signum)


class GracefulStop:
    """Context manager: while inside, the caught signals only set `received` (the run stops at a safe point)."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._saved: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        if self.received is not None:   # asked twice: stop now
            log.warning("second %s: stopping at once, without a checkpoint", signal.Signals(signum).name)
            raise KeyboardInterrupt
        self.received = int(signum)
        log.warning("received %s: the run stops after the current batch and writes a checkpoint",
                    signal.Signals(signum).name)

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():   # signals reach the main thread only
            for sig in CAUGHT:
                self._saved[sig] = signal.getsignal(sig)
                signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)
        self._saved.clear()

    def reinstall(self) -> None:
        """Take the signals back from whoever registered handlers since `__enter__` (Lightning does at fit)."""
        if self._saved:
            for sig in CAUGHT:
                signal.signal(sig, self._handle)

    def raise_if_received(self, step: int | None = None) -> None:
        """Between phases of a run (before training, between fit and test): stop here if asked."""
        if self.received is not None:
            raise Interrupted(self.received, step)


def stop_when_orphaned(parent: int, every_s: float = 2.0) -> threading.Event:
    """A job of a parallel sweep (a joblib worker) whose sweep process is gone (killed by `kill PID`, even by
    SIGKILL) sends itself SIGTERM: it stops as if the sweep had been stopped (checkpoint, status interrupted)
    instead of training on unwatched. Returns the event that ends the watch (set it when the job is done)."""
    done = threading.Event()

    def watch() -> None:
        while not done.wait(every_s):
            if os.getppid() != parent:
                log.warning("the sweep process (pid %d) is gone: stopping this job", parent)
                os.kill(os.getpid(), signal.SIGTERM)
                return

    threading.Thread(target=watch, name="leedl-orphan-watch", daemon=True).start()
    return done


class StopOnSignal(pl.Callback):
    """At the end of the batch during which a signal arrived: write the checkpoint and stop the run.

    The checkpoint is `checkpoints/last.ckpt` (what `resume=` continues from) when the training data can
    resume mid-epoch (leedl's in-memory loaders, whose data module keeps the loader's place in the checkpoint);
    otherwise `checkpoints/interrupted.ckpt`, and a resumed run restarts the interrupted epoch from the last
    end-of-epoch checkpoint, so that its numbers equal those of an uninterrupted run. A signal during an
    epoch's last batch or its validation stops the run once the epoch is done and saved (`last.ckpt`).
    """

    def __init__(self, stop: GracefulStop, checkpoint_dir) -> None:
        self.stop, self.checkpoint_dir = stop, checkpoint_dir

    def on_train_start(self, trainer, pl_module) -> None:
        # Lightning's own SIGTERM handling stops at the end of an epoch with an exit status of 0 and no record;
        # in one process leedl's replaces it (under DDP Lightning's stays: it also stops the other processes)
        if trainer.world_size == 1:
            self.stop.reinstall()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.stop.received is None or batch_idx + 1 >= trainer.num_training_batches:
            return   # the epoch's last batch: its validation and end-of-epoch checkpoint come first
        loader = trainer.train_dataloader
        loaders = loader if isinstance(loader, (list, tuple)) else [loader]
        for lo in loaders:   # Lightning has fetched the next batch already: it was not trained on
            if hasattr(lo, "batches_trained"):
                lo.batches_trained = batch_idx + 1
        datamodule = trainer.datamodule
        resumable = all(hasattr(lo, "batches_trained") for lo in loaders) and datamodule is not None \
            and "train_loader" in datamodule.state_dict()
        path = self.checkpoint_dir / ("last.ckpt" if resumable else "interrupted.ckpt")
        path.parent.mkdir(parents=True, exist_ok=True)
        trainer.save_checkpoint(str(path))
        log_step_metrics_now(trainer)   # this step's row of metrics.csv, as an uninterrupted run has it
        raise Interrupted(self.stop.received, trainer.global_step, str(path))

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        """A signal during the last batch or the validation of an epoch: stop once that epoch is saved."""
        if self.stop.received is not None:
            last = self.checkpoint_dir / "last.ckpt"
            raise Interrupted(self.stop.received, trainer.global_step, str(last) if last.is_file() else None)

    def on_test_batch_end(self, trainer, *args, **kwargs) -> None:
        if self.stop.received is not None:
            raise Interrupted(self.stop.received, trainer.global_step)
