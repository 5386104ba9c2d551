"""1/sqrt(x) (LayerNorm) and 1/x (softmax) in few rounds, for an x whose range is calibrated in advance.

CrypTen's `inv_sqrt` starts Newton from 2.2 exp(-(x/2 + 0.2)) + 0.2 - x/1024 (8 squarings for the exp) so
that it converges anywhere in about [0.002, 130], then runs 8 iterations of 3 sequential products: about
32 rounds per LayerNorm, 13 LayerNorms in MiniLM, over half of a request's rounds. Its `reciprocal` is
similar (exp start, 10 Newton iterations of 2 products: 28 rounds per softmax). Here the range of each
LayerNorm's variance and each softmax's denominator is measured once on public text (`calibrate.py`), moved
to sit around 1 by a public scale, and then:

- the initial guess is a(1 - bx)^(2^k) + c + dx, the same shape as CrypTen's (k squarings, k rounds), with
  a, b, c, d fitted to that range (minimax relative error: a linear program for each b on a grid), so k can
  be small;
- it is refined by Goldschmidt's iterations, which multiply independent values by a common factor in one
  batched product: 2 rounds per iteration for 1/sqrt (Newton needs 3), 1 per iteration for 1/x (Newton 2);
- k and the number of iterations are the cheapest pair that reaches `TOLERANCE` over the range widened by
  `MARGIN` on each side (checked in float64 when the plan is made).

The ranges are public constants (like Ditto's quantisation scales): both parties know them; the model owner
measures them on generated text and random token sequences, never on a user's input.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

__all__ = ["MARGIN", "TOLERANCE", "InversePlan", "inverse_shared", "plan_for_range"]

Shared = Any  # crypten.mpc.MPCTensor
Power = Literal["sqrt", "reciprocal"]
MARGIN = 2.0  # the calibrated range is widened by this factor below and above
TOLERANCE = 1e-3  # max relative error over the widened range
_MAX_SQUARINGS = 8
_MAX_ITERATIONS = 8


@dataclass(frozen=True)
class InversePlan:
    """x^-p = scale^p f(scale x) (p = 1/2 or 1), f fitted to the widened range of scale * x."""

    power: Power
    scale: float
    a: float
    b: float
    c: float
    d: float
    squarings: int
    iterations: int

    @property
    def exponent(self) -> float:
        return 0.5 if self.power == "sqrt" else 1.0

    @property
    def rounds(self) -> int:
        """Sequential products: the squarings, the first product with x, then 2 (sqrt) or 1 per iteration."""
        if not self.iterations:
            return self.squarings
        return self.squarings + 1 + (2 if self.power == "sqrt" else 1) * self.iterations

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def evaluate(self, values: np.ndarray, precision_bits: int | None = None) -> np.ndarray:
        """The same arithmetic in float64: what the shared evaluation computes.

        With `precision_bits`, every product is rounded to that fixed point as under MPC (Goldschmidt does not
        correct its own rounding, so a plan with many iterations on small values can drift).
        """
        step = 2.0**-precision_bits if precision_bits else 0.0

        def fx(v: np.ndarray) -> np.ndarray:
            return np.round(v / step) * step if step else v

        x = fx(self.scale * np.asarray(values, dtype=np.float64))
        with np.errstate(all="ignore"):  # a diverging candidate gives inf/nan, which fails the tolerance check
            base = fx(1.0 - fx(self.b * x))
            for _ in range(self.squarings):
                base = fx(base * base)
            y = fx(self.a * base) + fx(self.d * x) + self.c
            if self.iterations and self.power == "sqrt":
                g, h = fx(x * y), fx(0.5 * y)
                for _ in range(self.iterations):
                    r = 0.5 - fx(g * h)
                    g, h = g + fx(g * r), h + fx(h * r)
                y = 2.0 * h
            elif self.iterations:
                e = 1.0 - fx(x * y)
                for _ in range(self.iterations):
                    y, e = y + fx(y * e), fx(e * e)
            return np.asarray(y * self.scale**self.exponent)


def _interval(log2_ratio: int, power: Power) -> tuple[float, float]:
    """Where the scaled x lies: [r^-1/2, r^1/2], so that x and x^-p are both as far from 0 as they can be
    (in 14-bit fixed point a value near 1/16 keeps only about 10 significant bits)."""
    half = 2.0 ** (log2_ratio / 2)
    return 1.0 / half, half


@functools.lru_cache(maxsize=64)
def _fit(log2_ratio: int, squarings: int, power: Power) -> tuple[float, float, float, float, float]:
    """a, b, c, d minimising max |guess(x) x^p - 1| on `_interval`; and that error.

    For a fixed b the guess is linear in (a, c, d), so the minimax fit is a small linear program; b is searched
    on a grid. Deterministic, and about a second for all squarings of one range.
    """
    from scipy.optimize import linprog

    lo, hi = _interval(log2_ratio, power)
    exponent = 0.5 if power == "sqrt" else 1.0
    x = np.geomspace(lo, hi, 160)
    weight = x**exponent
    top = lo**-exponent  # the largest value of x^-p on the range
    ones = np.ones((len(x), 1))
    best = (math.inf, 0.0, 0.0, 0.0, 0.0)
    for b in np.geomspace(0.05, 1.0, 24) / hi:
        basis = np.stack([(1.0 - b * x) ** (2**squarings), np.ones_like(x), x], axis=1) * weight[:, None]
        # minimise t subject to -t <= basis @ (a, c, d) - 1 <= t
        a_ub = np.vstack([np.hstack([basis, -ones]), np.hstack([-basis, -ones])])
        b_ub = np.concatenate([np.ones(len(x)), -np.ones(len(x))])
        # bounded coefficients: a fit that cancels two large terms would lose all precision in fixed point
        bounds = [(0.0, 4 * top), (-2 * top, 2 * top), (-top, top), (None, None)]
        res = linprog(np.array([0.0, 0.0, 0.0, 1.0]), A_ub=a_ub, b_ub=b_ub, bounds=bounds)
        if res.status == 0 and res.fun < best[0]:
            a, c, d = (float(v) for v in res.x[:3])
            best = (float(res.fun), a, float(b), c, d)
    error, a, b, c, d = best
    return a, b, c, d, error


def plan_for_range(
    lo: float,
    hi: float,
    power: Power = "sqrt",
    margin: float = MARGIN,
    tolerance: float = TOLERANCE,
    precision_bits: int = 14,
) -> InversePlan:
    """The cheapest plan (fewest rounds) accurate to `tolerance` on [lo / margin, hi * margin].

    Accuracy is checked with every product rounded to `precision_bits` (Ditto mode's fixed point).
    """
    if not 0 < lo <= hi:
        raise ValueError("the calibrated range must be positive")
    log2_ratio = max(1, math.ceil(math.log2(hi / lo * margin * margin)))
    scale = 1.0 / math.sqrt(lo * hi)
    # inputs as fixed point can hold them after scaling: the input's own rounding is not the plan's error
    grid = np.unique(np.round(np.geomspace(lo / margin, hi * margin, 2000) * scale * 2.0**precision_bits))
    values = grid[grid > 0] / 2.0**precision_bits / scale
    exponent = 0.5 if power == "sqrt" else 1.0
    best: InversePlan | None = None
    for squarings in range(1, _MAX_SQUARINGS + 1):
        a, b, c, d, _ = _fit(log2_ratio, squarings, power)
        for iterations in range(_MAX_ITERATIONS + 1):
            plan = InversePlan(power, scale, a, b, c, d, squarings, iterations)
            if best is not None and plan.rounds >= best.rounds:
                break
            with np.errstate(all="ignore"):
                error = np.abs(plan.evaluate(values, precision_bits) * values**exponent - 1.0)
            if bool(np.all(error < tolerance)):  # nan (diverged) fails
                best = plan
                break
    if best is None:
        raise ValueError("no plan reaches the tolerance on this range")
    return best


def inverse_shared(crypten: Any, x: Shared, plan: InversePlan) -> Shared:
    """f(x) for a shared, already scaled x (x^-p = scale^p f(scale x)), in `plan.rounds` rounds."""
    base = x.mul(-plan.b).add(1.0)
    for _ in range(plan.squarings):
        base = base.square()
    y = base.mul(plan.a) + x.mul(plan.d) + plan.c
    if not plan.iterations:
        return y
    if plan.power == "reciprocal":
        return _goldschmidt_reciprocal(crypten, x, y, plan.iterations)
    return _goldschmidt_inv_sqrt(crypten, x, y, plan.iterations)


def _goldschmidt_reciprocal(crypten: Any, x: Shared, y: Shared, iterations: int) -> Shared:
    """y (1 + e)(1 + e^2)(1 + e^4)... with e = 1 - x y: y e and e^2 together in one round per iteration."""
    width = y.size(-1)
    e = (x * y).neg().add(1.0)
    for _ in range(iterations - 1):
        both = crypten.cat([y, e], dim=-1) * e
        y, e = y + both[..., :width], both[..., width:]
    return y + y * e  # e is not needed after the last iteration


def _goldschmidt_inv_sqrt(crypten: Any, x: Shared, y: Shared, iterations: int) -> Shared:
    """g -> sqrt(x), h -> 1/(2 sqrt(x)): r = 1/2 - g h, then g r and h r together in one round."""
    width = y.size(-1)
    g, h = x * y, y.mul(0.5)
    for _ in range(iterations - 1):
        r = (g * h).neg().add(0.5)
        both = crypten.cat([g, h], dim=-1) * r
        g, h = g + both[..., :width], h + both[..., width:]
    r = (g * h).neg().add(0.5)
    return (h + h * r).mul(2.0)  # g is not needed after the last iteration
