"""Domain-adversarial neural network (chapter 6; Ganin & Lempitsky, ICML 2015): feature extractor G_f,
label predictor G_y and domain classifier G_d, with a gradient reversal layer between G_f and G_d.

The gradient reversal layer is the identity going forward and multiplies the gradient by -lambda going back,
so one backward pass trains G_d to tell the domains apart and G_f to make them indistinguishable.

`feature_extractor` is swappable: a name in FEATURE_EXTRACTORS or the dotted path of any nn.Module class
built as `cls(in_channels=..., image_size=..., batch_norm=..., dropout=...)`; the output size is measured.
"""
from __future__ import annotations

import copy
from typing import Annotated

import torch
from hydra.utils import get_class
from torch import nn

from leedl_cli.contract import Probability, Provided
from leedl_cli.errors import LeedlError


class GradientReversalFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, lambd: float) -> torch.Tensor:
        ctx.lambd = float(lambd)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.lambd * grad, None


def grad_reverse(x: torch.Tensor, lambd: float = 1.0) -> torch.Tensor:
    return GradientReversalFunction.apply(x, lambd)


class GradientReversal(nn.Module):
    """R_lambda(x) = x forward; dR/dx = -lambda I backward. `lambd` is set by the task every step."""

    def __init__(self, lambd: float = 1.0) -> None:
        super().__init__()
        self.lambd = lambd

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return grad_reverse(x, self.lambd)

    def extra_repr(self) -> str:
        return f"lambd={self.lambd}"


class MNISTFeatures(nn.Module):
    """The paper's MNIST feature extractor: conv 5x5 32 -> max-pool 2 -> ReLU -> conv 5x5 48 -> max-pool 2 -> ReLU
    (batch normalisation after each convolution and dropout before the second pool are options)."""

    def __init__(self, in_channels: int = 3, image_size: int = 28, channels: tuple[int, int] = (32, 48),
                 batch_norm: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        c1, c2 = channels
        layers: list[nn.Module] = [nn.Conv2d(in_channels, c1, 5, bias=not batch_norm)]
        layers += [nn.BatchNorm2d(c1)] if batch_norm else []
        layers += [nn.MaxPool2d(2), nn.ReLU(), nn.Conv2d(c1, c2, 5, bias=not batch_norm)]
        layers += [nn.BatchNorm2d(c2)] if batch_norm else []
        layers += [nn.Dropout2d(dropout)] if dropout else []
        layers += [nn.MaxPool2d(2), nn.ReLU(), nn.Flatten()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


FEATURE_EXTRACTORS = {"mnist": MNISTFeatures}


class DomainBatchNorm(nn.Module):
    """Domain-specific batch normalisation (Chang et al., CVPR 2019): one BatchNorm (statistics and affine) per
    domain, the one of `domain` (0 source, 1 target) applied. Not in the DANN paper: an option of G_f."""

    def __init__(self, bn: nn.Module) -> None:
        super().__init__()
        self.bns = nn.ModuleList([bn, copy.deepcopy(bn)])
        self.domain = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bns[self.domain](x)


def _domain_batch_norm(module: nn.Module) -> int:
    """Replace every BatchNorm1d/2d inside `module` by a DomainBatchNorm; returns how many were replaced."""
    n = 0
    for name, child in module.named_children():
        if isinstance(child, (nn.BatchNorm1d, nn.BatchNorm2d)):
            setattr(module, name, DomainBatchNorm(child))
            n += 1
        else:
            n += _domain_batch_norm(child)
    return n


def _mlp(sizes: list[int], batch_norm: bool, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-2], sizes[1:-1]):
        layers += [nn.Linear(a, b, bias=not batch_norm)]
        layers += [nn.BatchNorm1d(b)] if batch_norm else []
        layers += [nn.ReLU()]
        layers += [nn.Dropout(dropout)] if dropout else []
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    return nn.Sequential(*layers)


class DANN(nn.Module):
    """G_f (features), G_y (label predictor: two hidden layers), G_d (domain classifier behind a gradient
    reversal layer; one logit, "is this image from the target domain"). With `rotation_head`, also G_r: which of
    0/90/180/270 degrees an image was rotated by (the self-supervised task of test-time training, Sun et al. 2020),
    on the same features, as large as G_y."""

    def __init__(self, in_channels: Provided[int], num_classes: Provided[int], image_size: Provided[int],
                 feature_extractor: str = "mnist", label_hidden: list[int] = (100, 100),
                 domain_hidden: list[int] = (100,), batch_norm: bool = False,
                 dropout: Annotated[float, Probability] = 0.0, domain_batch_norm: bool = False,
                 rotation_head: bool = False) -> None:
        super().__init__()
        cls = FEATURE_EXTRACTORS.get(feature_extractor) or get_class(feature_extractor)
        self.features = cls(in_channels=in_channels, image_size=image_size, batch_norm=batch_norm, dropout=dropout)
        if domain_batch_norm and not _domain_batch_norm(self.features):
            raise LeedlError("model.domain_batch_norm=true needs batch normalisation in the feature extractor "
                             "(model.batch_norm=true)")
        self.domain_batch_norm = bool(domain_batch_norm)
        with torch.no_grad():
            was = self.features.training
            self.features.eval()
            dim = self.features(torch.zeros(1, in_channels, image_size, image_size)).flatten(1).shape[1]
            self.features.train(was)
        self.feature_dim = dim
        self.label_predictor = _mlp([dim, *label_hidden, num_classes], batch_norm, dropout)
        self.grl = GradientReversal()
        self.domain_classifier = _mlp([dim, *domain_hidden, 1], batch_norm, 0.0)
        self.rotation_predictor = _mlp([dim, *label_hidden, 4], batch_norm, dropout) if rotation_head else None

    @classmethod
    def config_problems(cls, options: dict) -> list[str]:
        if options.get("domain_batch_norm") and not options.get("batch_norm"):
            return ["domain_batch_norm=true: expected batch_norm=true (a batch normalisation per domain needs "
                    "batch normalisation in the feature extractor)"]
        return []

    def set_domain(self, domain: int) -> None:
        """Which domain's batch normalisation G_f applies (only with domain_batch_norm; 0 source, 1 target)."""
        for m in self.features.modules():
            if isinstance(m, DomainBatchNorm):
                m.domain = int(domain)

    def features_of(self, x: torch.Tensor, domain: int = 0) -> torch.Tensor:
        """G_f(x) flattened, with `domain`'s batch normalisation (domain_batch_norm) or the shared one."""
        if not self.domain_batch_norm:
            return self.features(x).flatten(1)
        self.set_domain(domain)
        try:
            return self.features(x).flatten(1)
        finally:
            self.set_domain(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (what test time uses)."""
        return self.label_predictor(self.features_of(x))

    def domain_logits(self, features: torch.Tensor, lambd: float) -> torch.Tensor:
        """G_d(R_lambda(f)): one logit per image; the reversed gradient flows into G_f."""
        self.grl.lambd = lambd
        return self.domain_classifier(self.grl(features)).squeeze(-1)
