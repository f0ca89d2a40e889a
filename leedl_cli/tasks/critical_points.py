"""Critical points (ch. 1.1): gradient, Hessian, eigenvalues and the verdict at a given point theta.

At theta (the model's parameters, or `point` when given) the task computes the gradient g and the
Hessian H (torch.autograd.functional.hessian of the loss as a function of the flattened parameters),
the eigen-decomposition of H, and the verdict:

- `not_critical`: |g| > grad_tol (the Taylor series is dominated by the gradient term; follow -g),
- `local_minimum`: every eigenvalue > eig_tol,   `local_maximum`: every eigenvalue < -eig_tol,
- `saddle`: eigenvalues of both signs beyond eig_tol,
- `degenerate`: no negative eigenvalue but one (or more) within eig_tol of zero, or no positive but one
  near zero: the second-order term is flat along that eigenvector, so the Hessian alone cannot tell a
  minimum from a saddle (higher-order terms decide; on the toy network's curve w1*w2 = 1 it is a valley
  of global minima).

For a saddle, theta' = theta + step * u with u the unit eigenvector of the most negative eigenvalue
(sign fixed so its first non-zero entry is positive): L(theta') ~ L(theta) + step^2/2 * lambda < L(theta).
results.json gets exactly: gradient, hessian, eigenvalues, eigenvectors, kind, escape_direction,
loss_before, loss_after (the last three null unless kind is saddle).
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import torch
from torch.func import functional_call

from leedl_cli.contract import NonNegative, Positive
from leedl_cli.errors import LeedlError
from leedl_cli.tasks.base import LeedlTask


def verdict(eigenvalues: torch.Tensor, gradient_norm: float, grad_tol: float, eig_tol: float) -> str:
    if gradient_norm > grad_tol:
        return "not_critical"
    pos, neg = bool((eigenvalues > eig_tol).any()), bool((eigenvalues < -eig_tol).any())
    near_zero = bool((eigenvalues.abs() <= eig_tol).any())
    if pos and neg:
        return "saddle"
    if near_zero:
        return "degenerate"
    return "local_minimum" if pos else "local_maximum"


def unit_sign(v: torch.Tensor) -> torch.Tensor:
    nz = v[v.abs() > 1e-12]
    return v if len(nz) == 0 or nz[0] > 0 else -v


class CriticalPoints(LeedlTask):
    def __init__(self, model, optimizer=None, scheduler=None, run_dir: Path | None = None,
                 point: list[float] | None = None, step: Annotated[float, Positive] = 1.0,
                 grad_tol: Annotated[float, NonNegative] = 1e-6, eig_tol: Annotated[float, NonNegative] = 1e-6) -> None:
        super().__init__(model, optimizer, scheduler, run_dir=run_dir)
        n = sum(p.numel() for p in model.parameters())
        if point is not None and len(point) != n:
            raise LeedlError(f"task.module.point={list(point)}: model {type(model).__name__} has {n} parameters; "
                             f"give {n} numbers or null (the model's own start point)")
        self.point = None if point is None else [float(v) for v in point]
        self.step, self.grad_tol, self.eig_tol = float(step), float(grad_tol), float(eig_tol)

    def test_dataloader(self):
        return torch.utils.data.DataLoader([0], batch_size=1)

    def loss_at(self, flat: torch.Tensor) -> torch.Tensor:
        params, i = {}, 0
        for name, p in self.model.named_parameters():
            params[name] = flat[i:i + p.numel()].view_as(p)
            i += p.numel()
        return functional_call(self.model, params, ())

    def analyse(self) -> dict:
        theta = torch.cat([p.detach().reshape(-1) for p in self.model.parameters()]).double()
        if self.point is not None:
            theta = torch.tensor(self.point, dtype=torch.float64)
        x = theta.clone().requires_grad_(True)
        loss = self.loss_at(x)
        gradient = torch.autograd.grad(loss, x)[0].detach()
        hessian = torch.autograd.functional.hessian(self.loss_at, theta)
        eigenvalues, eigenvectors = torch.linalg.eigh(hessian)
        kind = verdict(eigenvalues, float(gradient.norm()), self.grad_tol, self.eig_tol)
        out = {"point": theta.tolist(), "gradient": gradient.tolist(), "hessian": hessian.tolist(),
               "eigenvalues": eigenvalues.tolist(), "eigenvectors": [unit_sign(v).tolist() for v in eigenvectors.T],
               "kind": kind, "escape_direction": None, "loss_before": float(loss), "loss_after": None,
               "grad_tol": self.grad_tol, "eig_tol": self.eig_tol}
        if kind == "saddle":
            u = unit_sign(eigenvectors[:, 0])   # eigh sorts ascending: column 0 has the most negative eigenvalue
            with torch.no_grad():
                out["loss_after"] = float(self.loss_at(theta + self.step * u))
            out["escape_direction"] = u.tolist()
            out["escape_step"] = self.step
        return out

    def test_step(self, batch, batch_idx):
        with torch.inference_mode(False), torch.enable_grad():   # Lightning tests under inference mode
            out = self.analyse()
        self.results.update(out)
        self.log("test/loss_before", out["loss_before"], batch_size=1)
        self.log("test/min_eigenvalue", out["eigenvalues"][0], batch_size=1)
        if out["loss_after"] is not None:
            self.log("test/loss_after", out["loss_after"], batch_size=1)
