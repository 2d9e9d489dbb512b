"""Which law does a metric follow in data size? Four forms, each judged on the size it
did not see.

    forms = held_out_predictions(examples, values)   # one point per run (all seeds)

The paper reads its Figure 4 as log-linear. With a handful of sizes, a straight
line in log10(x) and several other curves fit about equally well in sample, so
each form is fitted to every size but the largest and judged on how well it
predicts the largest one's mean, against that mean's own 95% interval over seeds:

- log-linear: y = a + b log10(x)         (the paper's reading)
- linear:     y = a + b x
- power law:  y = c x^p                  (fitted as a line in log-log; y > 0)
- saturating: y = y_inf - c x^(-p), p>0  (gains that shrink towards a ceiling)

Pure NumPy and scipy, float64.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Sequence

import numpy as np
from scipy import optimize, stats

Curve = Callable[[np.ndarray], np.ndarray]


def _line(u: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    b, a = np.polyfit(u, y, 1)
    return float(a), float(b)


def log_linear(x: np.ndarray, y: np.ndarray) -> Curve:
    a, b = _line(np.log10(x), y)
    return lambda q: a + b * np.log10(q)


def linear(x: np.ndarray, y: np.ndarray) -> Curve:
    a, b = _line(x, y)
    return lambda q: a + b * np.asarray(q, np.float64)


def power_law(x: np.ndarray, y: np.ndarray) -> Curve | None:
    if np.any(y <= 0):
        return None
    a, p = _line(np.log(x), np.log(y))
    return lambda q: np.exp(a) * np.asarray(q, np.float64) ** p


def saturating(x: np.ndarray, y: np.ndarray) -> Curve | None:
    # Scaled x keeps the exponent well conditioned whatever the data's units.
    scale = float(np.max(x))

    def f(q, y_inf, c, p):
        return y_inf - c * (np.asarray(q, np.float64) / scale) ** (-p)
    if np.unique(x).size < 3:  # three parameters need three sizes
        return None
    rising = np.polyfit(np.log(x), y, 1)[0] >= 0
    sign = 1.0 if rising else -1.0
    start = (float(y.max() if rising else y.min()), sign * float(np.ptp(y) or 1e-3), 0.5)
    bounds = ([-np.inf, -np.inf, 1e-3], [np.inf, np.inf, 10.0])
    try:
        with warnings.catch_warnings():  # an exact fit has no covariance to estimate
            warnings.simplefilter("ignore", optimize.OptimizeWarning)
            params, _ = optimize.curve_fit(f, x, y, p0=start, bounds=bounds, maxfev=20_000)
    except (RuntimeError, ValueError):
        return None
    return lambda q: f(q, *params)


FORMS: dict[str, Callable[[np.ndarray, np.ndarray], Curve | None]] = {
    "log-linear": log_linear, "linear": linear, "power law": power_law,
    "saturating": saturating}


@dataclasses.dataclass(frozen=True)
class HeldOut:
    form: str
    predicted: float  # at the largest size, from the smaller ones (NaN: no fit)
    observed: float  # the largest size's mean over its runs
    lo: float  # the observed mean's 95% interval over runs (t; NaN with one run)
    hi: float
    r2: float  # in-sample R^2 of the form fitted to every size

    @property
    def error(self) -> float:
        return self.predicted - self.observed

    @property
    def within(self) -> bool:
        return bool(self.lo <= self.predicted <= self.hi)


def mean_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean, lo, hi): Student-t interval of the mean of runs (NaN bounds for one run)."""
    v = np.asarray(values, np.float64)
    mean = float(v.mean())
    if v.size < 2:
        return mean, float("nan"), float("nan")
    half = stats.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size)
    return mean, mean - float(half), mean + float(half)


def _r2(curve: Curve | None, x: np.ndarray, y: np.ndarray) -> float:
    if curve is None:
        return float("nan")
    total = float(np.sum((y - y.mean()) ** 2))
    residual = float(np.sum((y - curve(x)) ** 2))
    return 1.0 - residual / total if total > 0 else float(residual == 0)


def held_out_predictions(examples: Sequence[float], values: Sequence[float]) -> list[HeldOut]:
    """Each form fitted without the largest size and scored at it; needs >= 3 sizes
    (>= 2 to fit, one held out)."""
    x = np.asarray(examples, np.float64)
    y = np.asarray(values, np.float64)
    largest = x == x.max()
    if np.unique(x[~largest]).size < 2:
        raise ValueError(f"held-out fits need at least 3 data sizes; got "
                         f"{np.unique(x).size}.")
    observed, lo, hi = mean_interval(y[largest])
    out = []
    for name, fit in FORMS.items():
        curve = fit(x[~largest], y[~largest])
        predicted = float(curve(np.array([x.max()]))[0]) if curve is not None else float("nan")
        out.append(HeldOut(name, predicted, observed, lo, hi, _r2(fit(x, y), x, y)))
    return out
