"""Where does a fitted straight line reach a given level, and how sure are we?

Both the takeoff ratio of a logistic curve (where the logit is 0) and the "effective size" of a
model (where a score-versus-log-size line reaches the model's score) are the solution of
``b0 + b1 * x = level`` for estimated ``(b0, b1)``. Two intervals for that ``x``:

- **Delta method**: ``x_hat +- crit * se`` with ``se`` from the gradient of ``(level - b0) / b1``.
  Always symmetric and always finite, even when the slope is indistinguishable from zero, which
  is exactly when it misleads.
- **Fieller** (inverse prediction): the set of ``x`` whose Wald test of ``b0 + b1 x = level``
  does not reject, ``(b0 + b1 x - level)^2 <= crit^2 * (Var(b0 + b1 x) + extra_var)``. It is
  exact for normal linear models and honest about ratios: when the slope's own test does not
  reject zero the set is unbounded (two rays or the whole line) and is reported as such,
  never as a plausible-looking pair of numbers.

``extra_var`` adds the variance of a new observation (``sigma^2``) when the level itself is a noisy
measurement (classical calibration) rather than a fixed target.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

BOUNDED, TWO_RAYS, WHOLE_LINE = "bounded", "two rays", "whole line"


@dataclass(frozen=True)
class InverseInterval:
    """A confidence set for ``x``; ``lower``/``upper`` are its convex hull (infinite if unbounded).

    ``kind`` is ``"bounded"`` (an ordinary interval), ``"two rays"`` (everything outside
    ``excluded``: the slope is not significant but the level is far from the line's centre) or
    ``"whole line"`` (no value of ``x`` can be excluded).
    """

    estimate: float
    lower: float
    upper: float
    kind: str
    excluded: tuple[float, float] | None = None

    @property
    def bounded(self) -> bool:
        return self.kind == BOUNDED

    def transform(self, f) -> "InverseInterval":
        """The same set under an increasing map ``f`` (e.g. ``2**x``); infinities map to f's limits."""
        def g(v):
            if math.isinf(v):
                return float(f(np.float64(v)))  # numpy gives 2**-inf = 0, 2**inf = inf
            return float(f(v))
        return InverseInterval(g(self.estimate), g(self.lower), g(self.upper), self.kind,
                               None if self.excluded is None else (g(self.excluded[0]), g(self.excluded[1])))

    def describe(self, fmt: str = ".3g") -> str:
        if self.kind == BOUNDED:
            return f"[{self.lower:{fmt}}, {self.upper:{fmt}}]"
        if self.kind == TWO_RAYS:
            lo, hi = self.excluded
            return f"unbounded: at most {lo:{fmt}} or at least {hi:{fmt}} (slope not significant)"
        return "unbounded: no value excluded (slope not significant)"


def solve(b0: float, b1: float, level: float = 0.0) -> float:
    """The ``x`` at which ``b0 + b1 x = level`` (NaN for a zero slope)."""
    return (level - b0) / b1 if b1 != 0 else float("nan")


def delta_se(b0: float, b1: float, cov, level: float = 0.0, extra_var: float = 0.0) -> float:
    """Delta-method standard error of ``(level - b0) / b1`` given ``cov`` of ``(b0, b1)``."""
    cov = np.asarray(cov, dtype=float)
    if b1 == 0:
        return float("nan")
    x = (level - b0) / b1
    grad = np.array([-1.0 / b1, -x / b1])
    var = float(grad @ cov @ grad) + extra_var / b1 ** 2
    return math.sqrt(var) if var >= 0 else float("nan")


def fieller(b0: float, b1: float, cov, crit: float, level: float = 0.0,
            extra_var: float = 0.0) -> InverseInterval:
    """Fieller's confidence set for the ``x`` solving ``b0 + b1 x = level`` (see module docstring).

    ``crit`` is the two-sided critical value (normal or t). The set is bounded exactly when the
    slope is significant at the same level: ``b1^2 > crit^2 Var(b1)``.
    """
    cov = np.asarray(cov, dtype=float)
    v00, v01, v11 = cov[0, 0] + extra_var, cov[0, 1], cov[1, 1]
    d = b0 - level
    c2 = crit ** 2
    # (d + b1 x)^2 - c2 (v00 + 2 v01 x + v11 x^2) <= 0  <=>  A x^2 + B x + C <= 0
    a = b1 ** 2 - c2 * v11
    b = 2.0 * (d * b1 - c2 * v01)
    c = d ** 2 - c2 * v00
    est = solve(b0, b1, level)
    disc = b * b - 4.0 * a * c
    if a > 0:
        # The point estimate satisfies the inequality strictly, so disc > 0 here.
        r = math.sqrt(max(disc, 0.0))
        lo, hi = sorted(((-b - r) / (2 * a), (-b + r) / (2 * a)))
        return InverseInterval(est, lo, hi, BOUNDED)
    if disc > 0 and a < 0:
        r = math.sqrt(disc)
        lo, hi = sorted(((-b - r) / (2 * a), (-b + r) / (2 * a)))
        return InverseInterval(est, -math.inf, math.inf, TWO_RAYS, (lo, hi))
    return InverseInterval(est, -math.inf, math.inf, WHOLE_LINE)
