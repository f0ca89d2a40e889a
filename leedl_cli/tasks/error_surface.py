"""Optimisation on a two-parameter error surface (ch. 1.2-1.5): the trajectory of theta = (w, b).

The model is a `leedl_cli.models.surfaces.Surface` (its parameter is the point theta, its forward()
the loss). There is no data: each Lightning step runs `updates_per_step` updates of the configured
torch optimizer and scheduler (manual optimisation, `self.optimizers()` / `self.lr_schedulers()`),
so 100,000 updates are 100 Lightning steps. The gradient is the surface's closed form (`analytic: true`,
checked against autograd by the tests; `analytic: false` uses autograd), written into theta.grad before
the torch optimizer's own step(). Every update's theta is kept in memory (the loss is evaluated on the
whole trajectory at the end); at the
end the run writes `trajectory.csv` (every update for the first max_rows/4, then an odd stride, always with
the last point), `surface_grid.json` (the loss on a grid, for contour plots without torch) and puts
the numbers of section 1.3 into results.json:

- final_loss, final_w, final_b, distance_to_minimum (final), min_distance_to_minimum,
  first_update_within_tol (the first update with distance <= `tol`, null if never)
- sign_changes_steep (the surface's steep_offset, b - b* or the distance from a tilted valley floor, changes sign) and sign_changes_last_10pct
- loss_range_last_10pct (max - min of the loss over the last 10% of updates: 0 when converged)
- flat_fraction_covered = (w_T - w_0) / (w* - w_0)
- bursts: after the steep offset first settles within `settle_tol` of 0, the number of separate excursions
  of |steep offset| above `burst_tol` (AdaGrad's bursts of Fig 1.28), and max_burst (largest such |b - b*|)
"""
from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path
from typing import Annotated

import torch

from leedl_cli.atomic import replace_atomically, write_text_atomic
from leedl_cli.contract import AtLeastOne, NonNegative, Range
from leedl_cli.models.surfaces import Surface
from leedl_cli.tasks.base import LeedlTask

log = logging.getLogger(__name__)


class ErrorSurface(LeedlTask):
    def __init__(self, model, optimizer=None, scheduler=None, run_dir: Path | None = None,
                 updates: Annotated[int, AtLeastOne] = 100_000, updates_per_step: Annotated[int, AtLeastOne] = 1000,
                 max_rows: Annotated[int, AtLeastOne] = 4000, tol: Annotated[float, NonNegative] = 1e-3,
                 settle_tol: Annotated[float, NonNegative] = 1e-3, burst_tol: Annotated[float, NonNegative] = 1e-2,
                 grid: Annotated[int, Range(2)] = 121, analytic: bool = True) -> None:
        super().__init__(model, optimizer, scheduler, run_dir=run_dir)
        self.automatic_optimization = False
        self.updates, self.updates_per_step = int(updates), int(updates_per_step)
        self.max_rows, self.tol, self.settle_tol, self.burst_tol, self.grid = max_rows, tol, settle_tol, burst_tol, grid
        self.trajectory = torch.empty(self.updates + 1, 2, dtype=torch.float64)
        self.analytic = analytic and type(model).gradient is not Surface.gradient
        self.done = 0

    # ---- data: one dummy item per Lightning step ------------------------------------------------
    def train_dataloader(self):
        steps = math.ceil(self.updates / self.updates_per_step)
        return torch.utils.data.DataLoader(list(range(steps)), batch_size=1)

    def num_updates(self) -> int:
        return self.updates

    def on_train_start(self) -> None:
        self.trajectory[0] = self.model.theta.detach()

    def training_step(self, batch, batch_idx):
        optimizer = self.optimizers().optimizer   # the configured torch optimizer itself (no per-update wrapper cost)
        scheduler = self.lr_schedulers()
        n = min(self.updates_per_step, self.updates - self.done)
        if n <= 0:
            return None
        if self.analytic:
            self._updates_closed_form(optimizer, scheduler, n)
        else:
            self._updates_autograd(optimizer, scheduler, n)
        with torch.no_grad():
            loss = self.model().detach()
        self.log("train/loss", loss.float(), on_step=True, prog_bar=True, batch_size=1)
        self.check_finite(loss)
        return loss

    def _updates_closed_form(self, optimizer, scheduler, n: int) -> None:
        """theta.grad from the surface's closed-form gradient (Python floats through numpy views of the
        tensors: no autograd graph), then the torch optimizer's own step."""
        theta = self.model.theta
        if theta.grad is None:
            theta.grad = torch.zeros_like(theta)
        t, g = theta.detach().numpy(), theta.grad.numpy()
        traj = self.trajectory.numpy()
        gradient, step, done = self.model.gradient, optimizer.step, self.done
        sched = scheduler.step if scheduler is not None else None
        for _ in range(n):
            g[0], g[1] = gradient(float(t[0]), float(t[1]))
            step()
            if sched is not None:
                sched()
            done += 1
            traj[done] = t
        self.done = done

    def _updates_autograd(self, optimizer, scheduler, n: int) -> None:
        theta, model = self.model.theta, self.model
        for _ in range(n):
            optimizer.zero_grad(set_to_none=False)
            model().backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            self.done += 1
            self.trajectory[self.done].copy_(theta.detach())

    # ---- the numbers and files of the run -------------------------------------------------------
    def on_train_end(self) -> None:
        traj = self.trajectory[: self.done + 1]
        with torch.no_grad():
            losses = self.model.loss(traj[:, 0], traj[:, 1])
        self.results.update(self.summary(traj, losses))
        if self.run_dir is not None:
            self.write_trajectory(traj, losses)
            self.write_grid()

    def summary(self, traj: torch.Tensor, losses: torch.Tensor) -> dict:
        surface = self.model
        minimum = surface.minimum or (0.0, 0.0)
        out: dict = {"surface": surface.describe(), "updates_done": int(self.done),
                     "final_loss": float(losses[-1]), "final_w": float(traj[-1, 0]), "final_b": float(traj[-1, 1]),
                     "trajectory_file": "trajectory.csv", "surface_grid_file": "surface_grid.json"}
        offset = traj - torch.tensor(minimum, dtype=torch.float64)
        steep = surface.steep_offset(traj[:, 0], traj[:, 1])
        signs = torch.sign(steep)
        changes = (signs[1:] * signs[:-1]) < 0
        tail = max(1, len(changes) // 10)
        out["sign_changes_steep"] = int(changes.sum())
        out["sign_changes_last_10pct"] = int(changes[-tail:].sum())
        last = losses[-max(1, len(losses) // 10):]
        out["loss_range_last_10pct"] = float(last.max() - last.min()) if torch.isfinite(last).all() else None
        if surface.minimum is not None:
            dist = offset.norm(dim=1)
            out["distance_to_minimum"] = float(dist[-1])
            out["min_distance_to_minimum"] = float(dist[torch.isfinite(dist)].min()) if torch.isfinite(dist).any() else None
            within = (dist <= self.tol).nonzero()
            out["first_update_within_tol"] = int(within[0]) if len(within) else None
            out["tol"] = self.tol
            w_gap = minimum[0] - float(traj[0, 0])
            out["flat_fraction_covered"] = (float(traj[-1, 0]) - float(traj[0, 0])) / w_gap if w_gap else None
            settled = (steep.abs() <= self.settle_tol).nonzero()
            if len(settled):
                after = steep[int(settled[0]):].abs()
                above = after > self.burst_tol
                starts = above[1:] & ~above[:-1]
                out["bursts"] = int(starts.sum()) + int(bool(above[0]))
                out["max_burst"] = float(after.max())
            else:
                out["bursts"], out["max_burst"] = None, None
        local = getattr(surface, "local_minimum", None)
        if local is not None:   # momentum's surface: which basin did the ball end in?
            barrier = 0.5 * (local[0] + minimum[0])
            out["reached_global_minimum"] = float((float(traj[-1, 0]) < barrier) == (minimum[0] < barrier))
        return out

    def write_trajectory(self, traj: torch.Tensor, losses: torch.Tensor) -> None:
        n = len(traj)
        dense = min(n, self.max_rows // 4)   # every update at the start, where the path turns
        stride = max(1, math.ceil((n - dense) / max(1, self.max_rows - dense)))
        stride += 1 - stride % 2             # odd: an even stride would show only one wall of an oscillation
        rows = list(range(dense)) + list(range(dense, n, stride))
        if rows[-1] != n - 1:
            rows.append(n - 1)

        def write(f) -> None:
            writer = csv.writer(f)
            writer.writerow(["update", *self.model.names, "loss"])
            for i in rows:
                writer.writerow([i, repr(float(traj[i, 0])), repr(float(traj[i, 1])), repr(float(losses[i]))])

        replace_atomically(self.run_dir / "trajectory.csv", write, newline="")

    def write_grid(self) -> None:
        w0, w1, b0, b1 = self.model.extent
        ws = torch.linspace(w0, w1, self.grid, dtype=torch.float64)
        bs = torch.linspace(b0, b1, self.grid, dtype=torch.float64)
        W, B = torch.meshgrid(ws, bs, indexing="xy")
        with torch.no_grad():
            Z = self.model.loss(W, B)
        grid = {"names": list(self.model.names), "w": ws.tolist(), "b": bs.tolist(), "loss": Z.tolist(),
                **self.model.describe()}
        write_text_atomic(self.run_dir / "surface_grid.json", json.dumps(grid))
