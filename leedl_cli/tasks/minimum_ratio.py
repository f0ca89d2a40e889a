"""The minimum ratio of trained networks (ch. 1.1.3, Fig 1.6).

One run = one small network (a few hundred parameters, e.g. `model=mlp model.hidden=[4]` on digits:
64*4+4 + 4*10+10 = 310 parameters), all on the full training set (one batch):

1. ordinary training: `train_updates` updates of the configured optimizer on the cross-entropy;
2. towards a critical point: `critical_updates` updates of the same optimizer class (lr `critical_lr`)
   minimising the squared gradient norm |dL/dtheta|^2 (double backward), as the book's experiment does;
3. the full Hessian of the training loss (torch.autograd.functional.hessian, vectorised) and its eigenvalues.

Minimum ratio (the book's text reading, chosen here): the share of positive eigenvalues,
    minimum_ratio = n_positive / n_parameters,
so 1 means a local minimum. An eigenvalue counts as zero when |lambda| <= zero_tol * max|lambda|; both
counts (n_positive, n_negative, n_zero) and the formula's literal reading n_positive / n_negative
(`positive_over_negative`) are reported too. A sweep over seeds and training lengths gives the scatter
of Fig 1.6 (leedl_cli.analysis.minimum_ratio:plot_minimum_ratio).

Also reported: `minimum_ratio_nonzero` = n_positive / (n_positive + n_negative) (near-zero eigenvalues left out),
`minimum_ratio_sign` (share of eigenvalues > 0 with no tolerance), and `n_blank_inputs`: inputs that are the same in
every training image. Each makes the first-layer weights from it redundant with the biases, so it accounts for
`zero_eigenvalues_from_blank_inputs` = n_blank_inputs x first-layer width zero eigenvalues
(`task.data.drop_blank_pixels=true` on digits: a network that sees no blank pixels).
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import torch
import torch.nn.functional as F
from torch.func import functional_call

from leedl_cli.contract import NonNegative, Positive
from leedl_cli.tasks.base import LeedlTask


class MinimumRatio(LeedlTask):
    def __init__(self, model, optimizer=None, scheduler=None, run_dir: Path | None = None,
                 train_updates: Annotated[int, NonNegative] = 300, critical_updates: Annotated[int, NonNegative] = 500,
                 critical_lr: Annotated[float, Positive] = 3e-3, zero_tol: Annotated[float, NonNegative] = 1e-6) -> None:
        super().__init__(model, optimizer, scheduler, run_dir=run_dir)
        self.automatic_optimization = False
        self.train_updates, self.critical_updates = int(train_updates), int(critical_updates)
        self.critical_lr, self.zero_tol = float(critical_lr), float(zero_tol)

    def num_updates(self) -> int:
        return max(1, self.train_updates)

    def flat_loss(self, flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        params, i = {}, 0
        for name, p in self.model.named_parameters():
            params[name] = flat[i:i + p.numel()].view_as(p)
            i += p.numel()
        return F.cross_entropy(functional_call(self.model, params, (x,)), y)

    def training_step(self, batch, batch_idx):
        x, y = batch
        optimizer = self.optimizers().optimizer
        scheduler = self.lr_schedulers()
        for _ in range(self.train_updates):              # 1. ordinary training
            optimizer.zero_grad()
            loss = F.cross_entropy(self.model(x), y)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
        params = [p for p in self.model.parameters()]
        with torch.no_grad():
            loss_trained = float(F.cross_entropy(self.model(x), y))
        grad_before = self.grad_norm(x, y)
        critical = self.optimizer_factory(params, lr=self.critical_lr)
        for _ in range(self.critical_updates):           # 2. minimise |grad L|^2
            critical.zero_grad()
            loss = F.cross_entropy(self.model(x), y)
            grads = torch.autograd.grad(loss, params, create_graph=True)
            sq = sum((g * g).sum() for g in grads)
            sq.backward()
            critical.step()
        flat = torch.cat([p.detach().reshape(-1) for p in params])
        hessian = torch.autograd.functional.hessian(lambda f: self.flat_loss(f, x, y), flat, vectorize=True)
        eig = torch.linalg.eigvalsh(0.5 * (hessian + hessian.T)).double()
        zero = self.zero_tol * float(eig.abs().max())
        n_pos, n_neg = int((eig > zero).sum()), int((eig < -zero).sum())
        n_zero = len(eig) - n_pos - n_neg
        blank = blank_inputs(x)
        first = next(m for m in self.model.modules() if isinstance(m, torch.nn.Linear))
        with torch.no_grad():
            loss_final = float(F.cross_entropy(self.model(x), y))
            acc = float((self.model(x).argmax(1) == y).float().mean())
        self.results.update({
            "training_loss": loss_final, "training_loss_before_critical": loss_trained, "train_accuracy": acc,
            "grad_norm_before": grad_before, "grad_norm_after": self.grad_norm(x, y),
            "n_parameters": len(eig), "n_positive": n_pos, "n_negative": n_neg, "n_zero": n_zero,
            "minimum_ratio": n_pos / len(eig), "positive_over_negative": n_pos / n_neg if n_neg else None,
            # the same count with the near-zero eigenvalues left out, and with no tolerance at all (sign only)
            "minimum_ratio_nonzero": n_pos / (n_pos + n_neg) if n_pos + n_neg else None,
            "minimum_ratio_sign": int((eig > 0).sum()) / len(eig),
            # inputs that are the same in every training image: each makes its first-layer weights redundant with
            # the biases (w_ji + t, b_j - t c with x_i = c leaves every output as it is): one zero eigenvalue
            # per blank input and first-layer unit
            "n_blank_inputs": blank, "zero_eigenvalues_from_blank_inputs": blank * first.out_features,
            "minimum_ratio_definition": "n_positive / n_parameters (eigenvalues with |lambda| <= zero_tol*max|lambda| are zero)",
            "eigenvalues": eig.tolist(), "zero_tol": self.zero_tol,
        })
        self.log("train/loss", loss_final, batch_size=len(y))
        self.log("train/minimum_ratio", n_pos / len(eig), batch_size=len(y))
        return torch.tensor(loss_final)

    def grad_norm(self, x, y) -> float:
        params = list(self.model.parameters())
        loss = F.cross_entropy(self.model(x), y)
        grads = torch.autograd.grad(loss, params)
        return float(torch.sqrt(sum((g * g).sum() for g in grads)))

    def validation_step(self, batch, batch_idx):
        pass


def blank_inputs(x: torch.Tensor) -> int:
    """How many input features (pixels) have the same value in every example of x."""
    flat = x.flatten(1)
    return int((flat == flat[:1]).all(0).sum())
