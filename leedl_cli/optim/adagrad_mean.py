"""The book's AdaGrad (ch. 1.3.2, eq. 1.20-1.21), which torch.optim lacks:

    sigma_i^t = sqrt( 1/(t+1) * sum_{k=0..t} (g_i^k)^2 ),    theta_i^{t+1} = theta_i^t - eta / (sigma_i^t + eps) * g_i^t

sigma is the root *mean* square of all past gradients. torch.optim.Adagrad keeps the root of their
*sum*, i.e. it is this rule with the learning-rate decay eta^t = eta / sqrt(t+1) built in (section 1.5.1).
Without that decay the effective step eta/sigma grows like sqrt(t) once the gradients become small, which
produces the bursts of Fig 1.28; `scheduler=inverse_time_decay` (eta/sqrt(1+t)) turns it back into torch's.
"""
from __future__ import annotations

import torch
from torch.optim import Optimizer


class AdaGradMean(Optimizer):
    def __init__(self, params, lr: float = 1e-2, eps: float = 1e-10, weight_decay: float = 0.0) -> None:
        if lr < 0:
            raise ValueError(f"AdaGradMean: lr must be >= 0, got {lr}")
        super().__init__(params, {"lr": lr, "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if group["weight_decay"]:
                    g = g.add(p, alpha=group["weight_decay"])
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["sum_sq"] = torch.zeros_like(p)
                state["step"] += 1
                state["sum_sq"].addcmul_(g, g)
                sigma = (state["sum_sq"] / state["step"]).sqrt_().add_(group["eps"])
                p.addcdiv_(g, sigma, value=-group["lr"])
        return loss
