"""Two-parameter loss surfaces of chapter 1: the point theta = (w, b) is the module's parameter.

Each surface is an `nn.Module` with one parameter `theta` (2 entries, float64: 100,000 updates of
a knife-edge learning rate must not drift through float32 rounding) and a `forward()` that takes no
input and returns the loss L(theta). `minimum` is the global minimum (None where there is a curve of
them) and `extent` the (w_min, w_max, b_min, b_max) box a contour plot shows. `loss_grid` evaluates
the surface on a grid without autograd for plots and tests.
"""
from __future__ import annotations

import math
from typing import Annotated

import torch
from torch import nn

from leedl_cli.contract import NonNegative, Positive


class Surface(nn.Module):
    names = ("w", "b")
    minimum: tuple[float, float] | None = None
    extent: tuple[float, float, float, float] = (-2.0, 2.0, -2.0, 2.0)

    def __init__(self, start: tuple[float, float] | list[float]) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.tensor([float(v) for v in start], dtype=torch.float64))

    @classmethod
    def config_problems(cls, options: dict) -> list[str]:
        """A point of the plane (the start, a minimum) is two numbers."""
        return [f"{key}={list(options[key])}: expected two numbers ({', '.join(cls.names)})"
                for key in ("start", "minimum") if options.get(key) is not None and len(options[key]) != 2]

    def loss(self, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def gradient(self, w: float, b: float) -> tuple[float, float]:
        """dL/dw, dL/db in closed form on Python floats (the fast path of the error_surface task: no autograd
        graph per update). Tests check it against autograd."""
        raise NotImplementedError

    def forward(self) -> torch.Tensor:
        return self.loss(self.theta[0], self.theta[1])

    def steep_offset(self, w, b):
        """The coordinate whose sign changes count as oscillation between the valley walls (b - b* by default)."""
        return b - (self.minimum[1] if self.minimum else 0.0)

    def at(self, point) -> torch.Tensor:
        """L at another point (no change to theta)."""
        p = torch.as_tensor(point, dtype=torch.float64)
        return self.loss(p[0], p[1])

    def describe(self) -> dict:
        return {"surface": type(self).__name__, "names": list(self.names), "minimum": self.minimum,
                "extent": list(self.extent)}


class ElongatedQuadratic(Surface):
    """The book's convex error surface with a flat axis w and a steep axis b (Figs 1.22-1.23, 1.28-1.30).

        L(w, b) = a/2 (w - w*)^2 + c s^2 (sqrt(1 + (v/s)^2) - 1),   v = (b - b*) - tilt (w - w*)

    Along w: a quadratic of curvature a = 1 (flat). Along b: curvature c = 300 at the valley floor (steep),
    quadratic for |b - b*| << s and growing like c s |b - b*| far from it (a convex "pseudo-Huber" wall).
    Why not a pure quadratic in b: gradient descent on c/2 b^2 oscillates without converging only at
    exactly lr = 2/c (below it converges, above it diverges). With the softened wall, every lr in
    (2/c, ~3/c] settles on a stable oscillation between the two valley walls: lr 1e-2 gives
    b -> -b -> b ... at |b - b*| = 1.118 s forever, as in Fig 1.23(a), while the flat w still moves.
    lr 1e-7 reaches the valley floor slowly and then covers only 1 - (1 - 1e-7 a)^1e5 ~ 1% of the flat
    distance w* - w0 = 10 in 100,000 updates (Fig 1.23(b)).
    The valley floor b = b* + tilt (w - w*) is slightly tilted (tilt = 0.1): on an axis-aligned valley the
    steep coordinate's gradient underflows to exactly 0 and the book's AdaGrad can never burst; with the tilt
    the gradient along b stays small but non-zero while w moves, so sigma_b shrinks and the bursts of
    Fig 1.28 appear. `steep_offset` (v, the distance from the valley floor along b) is what oscillates.
    """

    minimum = (0.0, 0.0)
    extent = (-11.0, 2.0, -4.0, 4.0)

    def __init__(self, start: tuple[float, float] | list[float] = (-10.0, 3.0), a: Annotated[float, NonNegative] = 1.0,
                 c: Annotated[float, NonNegative] = 300.0, s: Annotated[float, Positive] = 1.0,
                 minimum: tuple[float, float] | list[float] = (0.0, 0.0), tilt: float = 0.1) -> None:
        super().__init__(start)
        self.a, self.c, self.s, self.tilt = float(a), float(c), float(s), float(tilt)
        self.minimum = (float(minimum[0]), float(minimum[1]))
        w0, b0 = (float(v) for v in start)
        reach = abs(b0 - self.minimum[1]) + abs(self.tilt * (w0 - self.minimum[0])) + 1
        self.extent = (min(w0, self.minimum[0]) - 1, max(w0, self.minimum[0]) + 1,
                       self.minimum[1] - reach, self.minimum[1] + reach)

    def steep_offset(self, w, b):
        return (b - self.minimum[1]) - self.tilt * (w - self.minimum[0])

    def gradient(self, w, b):
        v = (b - self.minimum[1]) - self.tilt * (w - self.minimum[0])
        dv = self.c * v / math.sqrt(1 + (v / self.s) * (v / self.s)) if math.isfinite(v) else v
        return self.a * (w - self.minimum[0]) - self.tilt * dv, dv

    def loss(self, w, b):
        u = self.steep_offset(w, b) / self.s
        return 0.5 * self.a * (w - self.minimum[0]) ** 2 + self.c * self.s ** 2 * (torch.sqrt(1 + u * u) - 1)


class ToyNetwork(Surface):
    """The one-datum, two-weight network of Fig 1.4: y_hat = w1 * w2 * x with x = 1, y = 1, so
    L(w1, w2) = (1 - w1 w2)^2. Critical points: the saddle at the origin (eigenvalues -2 and 2) and the
    curve of global minima w1 w2 = 1 (loss 0; one Hessian eigenvalue 0 along the curve: degenerate)."""

    names = ("w1", "w2")
    minimum = None
    extent = (-2.0, 2.0, -2.0, 2.0)

    def __init__(self, start: tuple[float, float] | list[float] = (0.0, 0.0), x: float = 1.0, y: float = 1.0) -> None:
        super().__init__(start)
        self.x, self.y = float(x), float(y)

    def gradient(self, w, b):
        r = self.y - w * b * self.x
        return -2 * r * b * self.x, -2 * r * w * self.x

    def loss(self, w, b):
        return (self.y - w * b * self.x) ** 2


class LocalMinimum(Surface):
    """A valley with a shallow local minimum before a deeper one, for momentum (Fig 1.17):

        L(w, b) = (w^2 - 1)^2 + tilt * w + k/2 b^2

    With tilt = 0.3: a local minimum near w = +0.96 (L ~ 0.29), a barrier near w = 0.08, and the global
    minimum near w = -1.04 (L ~ -0.31). Starting at w = 2 and rolling towards negative w, gradient
    descent stops in the first (local) minimum; momentum carries the ball over the barrier."""

    extent = (-2.0, 2.5, -1.5, 1.5)

    def __init__(self, start: tuple[float, float] | list[float] = (2.0, 1.0), tilt: float = 0.3,
                 k: Annotated[float, NonNegative] = 1.0) -> None:
        super().__init__(start)
        self.tilt, self.k = float(tilt), float(k)
        # the global minimum of the quartic (left well): solve 4w^3 - 4w + tilt = 0 by Newton from -1
        w = -1.0
        for _ in range(50):
            w -= (4 * w ** 3 - 4 * w + self.tilt) / (12 * w ** 2 - 4)
        self.minimum = (w, 0.0)
        v = 1.0
        for _ in range(50):
            v -= (4 * v ** 3 - 4 * v + self.tilt) / (12 * v ** 2 - 4)
        self.local_minimum = (v, 0.0)

    def gradient(self, w, b):
        return 4 * w * (w * w - 1) + self.tilt, self.k * b

    def loss(self, w, b):
        return (w * w - 1) ** 2 + self.tilt * w + 0.5 * self.k * b * b

    def describe(self) -> dict:
        return {**super().describe(), "local_minimum": self.local_minimum}


class Rosenbrock(Surface):
    """Rosenbrock's banana valley: L(w, b) = (1 - w)^2 + 100 (b - w^2)^2, minimum (1, 1)."""

    minimum = (1.0, 1.0)
    extent = (-2.0, 2.0, -1.0, 3.0)

    def __init__(self, start: tuple[float, float] | list[float] = (-1.5, 2.0),
                 scale: Annotated[float, NonNegative] = 100.0) -> None:
        super().__init__(start)
        self.scale = float(scale)

    def gradient(self, w, b):
        return -2 * (1 - w) - 4 * self.scale * w * (b - w * w), 2 * self.scale * (b - w * w)

    def loss(self, w, b):
        return (1 - w) ** 2 + self.scale * (b - w * w) ** 2


def distance(point, minimum) -> float:
    return math.hypot(float(point[0]) - minimum[0], float(point[1]) - minimum[1])
