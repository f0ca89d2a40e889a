"""Move prediction (chapter 2.8, AlphaGo's supervised policy network): cross-entropy over the 361 points against
the move the strong player made; top-1 and top-5 accuracy on held-out games.

Occupied points get no probability (`mask_occupied`, from the "empty" feature plane): the network only has to
rank legal points. Counts add up over the epoch like `Classification` (`<stage>/acc` is top-1, `<stage>/top5`).
results.json records the data's games and positions per split (`go_data`) and the training positions seen.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import torch
import torch.nn.functional as F

from leedl_cli.contract import Probability, Provided
from leedl_cli.data.go_features import EMPTY_PLANE
from leedl_cli.tasks.classification import Classification


class GoPolicy(Classification):
    def __init__(self, model, optimizer=None, scheduler=None, run_dir: Path | None = None,
                 mask_occupied: bool = True, label_smoothing: Annotated[float, Probability] = 0.0,
                 data_info: Provided[Callable[[], dict] | None] = None):
        super().__init__(model, optimizer, scheduler, run_dir=run_dir, label_smoothing=label_smoothing)
        self.mask_occupied = mask_occupied
        self.data_info = data_info
        self.top5 = {s: [0, 0] for s in ("train", "val", "test")}
        self.positions_seen = 0   # training examples the optimizer has stepped on

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        if self.mask_occupied:
            out = out.masked_fill(x[:, EMPTY_PLANE].flatten(1) < 0.5, -1e4)
        return out

    def _step(self, batch, stage: str):
        x, y = batch
        logits = self.logits(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        self.tally[stage].update(logits, y, loss)
        if stage == "train":
            self.positions_seen += len(y)
        if stage != "train" or self.logs_this_step():
            with torch.no_grad():
                hit = (logits.topk(5, dim=-1).indices == y[:, None]).any(-1).sum()
            self.top5[stage][0] += int(hit)
            self.top5[stage][1] += len(y)
        return loss

    def _log_epoch(self, stage: str) -> None:
        super()._log_epoch(stage)
        hits, n = self.top5[stage]
        if n:
            self.log(f"{stage}/top5", hits / n, sync_dist=True)
        self.top5[stage] = [0, 0]

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def on_test_end(self) -> None:
        info = self.data_info() if self.data_info is not None else {}
        if info:
            self.results["go_data"] = info
        self.results["training_positions_seen"] = self.positions_seen
