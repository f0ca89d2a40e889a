"""`task.test_weights=ema`: test an exponential moving average of the weights instead of the final weights.

After every optimizer update the average moves towards the weights just reached,

    theta_ema <- d * theta_ema + (1 - d) * theta        (the first update copies theta),

for every parameter of the task module and every floating-point buffer (batch normalisation's running mean and
variance); integer buffers (batch counts) are the model's own. With d = 0.999 the average spans about the last
1 / (1 - d) = 1,000 updates. The average is kept in 32-bit floats whatever the weights' precision, is saved in
the run's checkpoints and restored with them (a resumed run goes on with the same average), and is swapped in
for the test only: training and validation use the weights being trained, and the final weights are back in
the module once the test is over. The final weights' own test numbers are what `task.test_weights=last` gives.
"""
from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch

from leedl_cli.errors import LeedlError


class EMAWeights(pl.Callback):
    """An exponential moving average of the module's weights (decay `d`, 0 < d < 1), tested in their place."""

    def __init__(self, decay: float = 0.999) -> None:
        if not 0.0 < float(decay) < 1.0:
            raise LeedlError(f"task.ema_decay={decay!r}: expected a decay d with 0 < d < 1 (0.999: an average over "
                             f"about the last 1,000 updates)")
        self.decay = float(decay)
        self.average: dict[str, torch.Tensor] | None = None   # name -> averaged value (float32)
        self.updates = 0                                      # optimizer updates averaged so far
        self._step = 0                                        # trainer.global_step of the last update
        self._final: dict[str, torch.Tensor] | None = None    # the trained weights while the average is tested

    @property
    def state_key(self) -> str:
        return self._generate_state_key(decay=self.decay)

    @staticmethod
    def averaged_tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
        """The tensors that are averaged: every parameter and every floating-point buffer, by name."""
        tensors = {f"param:{n}": p for n, p in module.named_parameters()}
        tensors.update({f"buffer:{n}": b for n, b in module.named_buffers() if torch.is_floating_point(b)})
        return tensors

    def _matched(self, module: torch.nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(average, live tensor) pairs; the average moved to the live tensor's device (after a restore)."""
        live = self.averaged_tensors(module)
        if set(live) != set(self.average):
            missing, extra = sorted(set(live) - set(self.average)), sorted(set(self.average) - set(live))
            raise LeedlError(f"the moving average of the weights does not fit this model (not averaged: "
                             f"{missing[:3]}; averaged but not in the model: {extra[:3]}): resume with the model "
                             f"the checkpoint was trained with")
        pairs = []
        for name, t in live.items():
            avg = self.average[name]
            if avg.device != t.device:
                avg = self.average[name] = avg.to(t.device)
            pairs.append((avg, t))
        return pairs

    @torch.no_grad()
    def update(self, module: torch.nn.Module) -> None:
        """One step of the average towards the module's current weights."""
        if self.average is None:
            self.average = {n: t.detach().to(torch.float32, copy=True) for n, t in self.averaged_tensors(module).items()}
        else:
            for avg, t in self._matched(module):
                avg.lerp_(t.detach().to(torch.float32), 1.0 - self.decay)
        self.updates += 1

    # ---- training: one update of the average per optimizer step ---------------------------------------
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        if trainer.global_step > self._step:   # not on batches that only accumulate gradients
            self._step = trainer.global_step
            self.update(pl_module)

    # ---- test: the average in, the trained weights back after ------------------------------------------
    @torch.no_grad()
    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.average is None:
            raise LeedlError("task.test_weights=ema: no moving average of the weights to test (the run trained "
                             "no step and its checkpoint holds none); use task.test_weights=last")
        pairs = self._matched(pl_module)
        self._final = {n: t.detach().clone() for n, t in self.averaged_tensors(pl_module).items()}
        for avg, t in pairs:
            t.copy_(avg)

    @torch.no_grad()
    def restore_final(self, pl_module: pl.LightningModule) -> None:
        if self._final is None:
            return
        live = self.averaged_tensors(pl_module)
        for name, value in self._final.items():
            live[name].copy_(value)
        self._final = None

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.restore_final(pl_module)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self.restore_final(pl_module)

    # ---- checkpoints ------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "updates": self.updates, "step": self._step, "average": self.average}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.updates, self._step = int(state["updates"]), int(state["step"])
        self.average = state["average"]   # moved to the weights' device at its next use
