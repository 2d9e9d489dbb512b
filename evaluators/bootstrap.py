"""Percentile-bootstrap confidence intervals over evaluation images.

An evaluator with `bootstrap: N` (N > 0 resamples) also yields, for each of its
metrics `m`, `m_ci95_lo` and `m_ci95_hi`: the 2.5th and 97.5th percentiles of
`m` recomputed on N resamples of its evaluation images drawn with replacement.
The interval covers the sampling of the evaluation set only (the model, and a
probe's fitted weights, are held fixed); the spread over training seeds is the
study's to measure (big_vision_like/tools/collect.py).

Resamples are drawn from a fixed seed, so a metric's interval is reproducible,
and are the same index sets for every metric of one evaluator.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import numpy as np

LEVEL = 0.95
LO, HI = "_ci95_lo", "_ci95_hi"


def resample_indices(n: int, resamples: int, seed: int = 0) -> np.ndarray:
    """[resamples, n] indices into n items, drawn with replacement."""
    if n < 1:
        raise ValueError("bootstrap: no evaluation images to resample.")
    return np.random.default_rng(seed).integers(0, n, (resamples, n))


def intervals(statistic: Callable[[np.ndarray], Mapping[str, float]], n: int,
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
    for name, (lo, hi) in intervals(statistic, n, resamples, seed).items():
        yield name + LO, lo
        yield name + HI, hi



def mean_interval(values: np.ndarray, name: str, resamples: int, seed: int = 0
                  ) -> Iterator[tuple[str, float]]:
    """The interval of the mean of per-image `values` (an accuracy from 0/1 hits)."""
    values = np.asarray(values, np.float64)
    return interval_metrics(lambda idx: {name: values[idx].mean()}, len(values), resamples,
                            seed)
