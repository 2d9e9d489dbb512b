"""metric = a + b * log10(examples): the paper's log-linear law of performance
against pre-training data size, fitted by least squares.

b is the gain per 10x more data, with its 95% interval (Student t on the
least-squares standard error; every run a point, so seeds count). NumPy and
scipy, float64.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from scipy import stats


@dataclasses.dataclass(frozen=True)
class Fit:
    a: float  # the metric at 1 example (log10 x = 0)
    b: float  # the metric's change per 10x examples
    r2: float  # coefficient of determination of the fit
    n: int  # points fitted
    b_lo: float = float("nan")  # 95% interval of b (NaN with two points: no residual)
    b_hi: float = float("nan")

    def __call__(self, examples) -> np.ndarray:
        return self.a + self.b * np.log10(np.asarray(examples, np.float64))


def fit_log_linear(examples: Sequence[float], values: Sequence[float]) -> Fit:
    """Least-squares a, b of values ~ a + b * log10(examples), and R^2.

    R^2 follows sklearn's r2_score: 1 - SS_res / SS_tot, and for constant
    values 1.0 when they are fitted exactly (else 0.0).
    """
    x = np.asarray(examples, np.float64).ravel()
    y = np.asarray(values, np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"{x.size} example counts but {y.size} values; give one each.")
    if not (np.all(np.isfinite(x)) and np.all(x > 0)):
        raise ValueError(f"example counts {x.tolist()} must be finite and positive "
                         "(their log10 is the fit's x).")
    if not np.all(np.isfinite(y)):
        raise ValueError(f"values {y.tolist()} must be finite.")
    if np.unique(x).size < 2:
        raise ValueError(f"example counts {x.tolist()}: a line needs at least two "
                         "different data sizes.")
    lx = np.log10(x)
    design = np.stack([np.ones_like(lx), lx], axis=1)
    (a, b), *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = float(np.sum((y - (a + b * lx)) ** 2))
    total = float(np.sum((y - y.mean()) ** 2))
    if total > 0:
        r2 = 1.0 - residual / total
    else:
        r2 = 1.0 if residual == 0 else 0.0
    lo = hi = float("nan")
    if x.size > 2:
        spread = float(np.sum((lx - lx.mean()) ** 2))
        half = stats.t.ppf(0.975, x.size - 2) * np.sqrt(residual / (x.size - 2) / spread)
        lo, hi = float(b - half), float(b + half)
    return Fit(a=float(a), b=float(b), r2=float(r2), n=int(x.size), b_lo=lo, b_hi=hi)
