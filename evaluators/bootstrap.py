"""Percentile-bootstrap confidence intervals over evaluation images.

An evaluator with `bootstrap: N` (N > 0 resamples) also yields, for each of its
metrics `m`, `m_ci95_lo` and `m_ci95_hi`: the 2.5th and 97.5th percentiles of
`m` recomputed on N resamples of its evaluation images drawn with replacement.
The interval covers the sampling of the evaluation set only (the model, and a
probe's fitted weights, are held fixed); the spread over training seeds is the
study's to measure (big_vision_like/tools/collect.py).

Resamples are drawn from a fixed seed, so a metric's interval is reproducible,
and are the same index sets for every metric of one evaluator.

Ranking metrics whose value is not an average over images (mAP@k) take the
grouped jackknife instead (`jackknife_metrics`): resampling with replacement
duplicates images, and a duplicated positive raises its class's AP (its copies
tie at one rank and all count as hits: a lone positive at rank r scores 1/r,
two copies of it 2/(r + 1)), so the percentile interval sits above the value
itself (on the data-size study's fasteval it excluded mAP@100 at every size).
Deleting groups of images changes no image's multiplicity.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import numpy as np
from scipy import stats

LEVEL = 0.95
LO, HI = "_ci95_lo", "_ci95_hi"


def resample_indices(n: int, resamples: int, seed: int = 0) -> np.ndarray:
    """[resamples, n] indices into n items, drawn with replacement."""
    if n < 1:
        raise ValueError("bootstrap: no evaluation images to resample.")
    return np.random.default_rng(seed).integers(0, n, (resamples, n))


def _intervals(statistic: Callable[[np.ndarray], Mapping[str, float]], n: int,
              resamples: int, seed: int = 0, level: float = LEVEL
              ) -> dict[str, tuple[float, float]]:
    """name -> (lo, hi): the percentile interval of each metric `statistic(indices)`
    returns, over `resamples` resamples of `n` items."""
    draws: dict[str, list[float]] = {}
    for idx in resample_indices(n, resamples, seed):
        for name, value in statistic(idx).items():
            draws.setdefault(name, []).append(float(value))
    tail = 100 * (1 - level) / 2
    return {name: (float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail)))
            for name, v in draws.items()}


def interval_metrics(statistic: Callable[[np.ndarray], Mapping[str, float]], n: int,
                     resamples: int, seed: int = 0) -> Iterator[tuple[str, float]]:
    """(`m_ci95_lo`, lo), (`m_ci95_hi`, hi) per metric; nothing when resamples is 0."""
    if not resamples:
        return
    for name, (lo, hi) in _intervals(statistic, n, resamples, seed).items():
        yield name + LO, lo
        yield name + HI, hi


def mean_interval(values: np.ndarray, name: str, resamples: int, seed: int = 0
                  ) -> Iterator[tuple[str, float]]:
    """The interval of the mean of per-image `values` (an accuracy from 0/1 hits)."""
    values = np.asarray(values, np.float64)
    return interval_metrics(lambda idx: {name: values[idx].mean()}, len(values), resamples,
                            seed)


def jackknife_metrics(statistic: Callable[[np.ndarray], Mapping[str, float]], n: int,
                      groups: int, seed: int = 0) -> Iterator[tuple[str, float]]:
    """(`m_ci95_lo`, lo), (`m_ci95_hi`, hi) per metric from the delete-a-group
    jackknife: the n items in `groups` random groups, the statistic recomputed
    without each, the standard error sqrt((g - 1) / g * sum (t_i - mean t)^2), and
    value -/+ t(0.975, g - 1) * se. Nothing when groups is 0."""
    if not groups:
        return
    groups = min(groups, n)
    if groups < 2:
        raise ValueError("jackknife: needs at least 2 evaluation images.")
    order = np.random.default_rng(seed).permutation(n)
    full = {k: float(v) for k, v in statistic(np.arange(n)).items()}
    parts = np.array_split(order, groups)
    draws: dict[str, list[float]] = {}
    for g in range(groups):
        keep = np.sort(np.concatenate([p for i, p in enumerate(parts) if i != g]))
        for name, value in statistic(keep).items():
            draws.setdefault(name, []).append(float(value))
    t = stats.t.ppf(0.5 + LEVEL / 2, groups - 1)
    for name, v in draws.items():
        v = np.asarray(v)
        se = np.sqrt((groups - 1) / groups * np.sum((v - v.mean()) ** 2))
        yield name + LO, full[name] - t * se
        yield name + HI, full[name] + t * se
