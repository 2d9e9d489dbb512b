"""Few-shot linear evaluation: closed-form ridge regression on frozen features.

For each shot count k and seed: draw k training examples per class, whiten
the pre-logit features with their mean and standard deviation, append a
bias column, and solve ridge regression onto +-1 targets for every
regularisation strength from one eigendecomposition of X^T X. The strength
is chosen on a validation draw disjoint from the shots (never on the test
split); the test accuracy at that strength is reported, averaged over seeds.
"""

from __future__ import annotations

import numpy as np

from evaluators.bootstrap import mean_interval
from evaluators.common import EvalContext, frozen_features

DEFAULT_L2 = tuple(2.0 ** p for p in range(-10, 11, 2))


def whiten(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    mean, std = train.mean(0), train.std(0) + 1e-6
    with_bias = lambda x: np.concatenate([(x - mean) / std, np.ones((len(x), 1))], axis=1)
    return [with_bias(train)] + [with_bias(x) for x in others]


def ridge_solutions(x: np.ndarray, y: np.ndarray, l2_regs) -> list[np.ndarray]:
    """W minimising |XW - Y|^2 + l2 |W|^2 for each l2, from one eigendecomposition."""
    x = x.astype(np.float64)
    evals, evecs = np.linalg.eigh(x.T @ x)
    xty = evecs.T @ (x.T @ y.astype(np.float64))
    return [evecs @ (xty / (evals + l2)[:, None]) for l2 in l2_regs]


def sample_shots(labels: np.ndarray, shots: int, rng: np.random.Generator,
                 exclude: np.ndarray | None = None) -> np.ndarray:
    """Indices of `shots` examples of every class (fewer if a class has fewer)."""
    picked = []
    for c in np.unique(labels):
        pool = np.flatnonzero(labels == c)
        if exclude is not None:
            pool = np.setdiff1d(pool, exclude)
        picked.append(rng.choice(pool, size=min(shots, len(pool)), replace=False))
    return np.concatenate(picked)


def fewshot_hits(train_x, train_y, test_x, test_y, shots: int, seed: int,
                 l2_regs=DEFAULT_L2, val_shots: int = 5) -> tuple[np.ndarray, float]:
    """(per test image: right or not, chosen l2) of one k-shot draw."""
    rng = np.random.default_rng(seed)
    idx = sample_shots(train_y, shots, rng)
    val = sample_shots(train_y, val_shots, rng, exclude=idx)
    classes = np.unique(train_y)
    targets = 2.0 * (train_y[idx, None] == classes[None, :]) - 1.0
    x, xv, xt = whiten(train_x[idx], train_x[val], test_x)
    solutions = ridge_solutions(x, targets, l2_regs)
    val_acc = [np.mean(classes[(xv @ w).argmax(1)] == train_y[val]) for w in solutions]
    best = int(np.argmax(val_acc))
    return classes[(xt @ solutions[best]).argmax(1)] == test_y, float(l2_regs[best])


class FewShotEvaluator:
    """config: data_train, data_test (dicts with split, optional name), pp
    (keeping 'image' and an integer 'label'), shots (default 1, 5, 10, 25),
    seeds (default 3), l2_regs. Yields '<k>shot' test accuracies."""

    def __init__(self, config, context: EvalContext):
        self.config, self.ctx = config, context

    def run(self, variables):
        train_x, train_y = frozen_features(self.ctx, variables, self.config,
                                           self.config.data_train)
        test_x, test_y = frozen_features(self.ctx, variables, self.config,
                                         self.config.data_test)
        l2 = tuple(self.config.l2_regs or DEFAULT_L2)
        for shots in self.config.shots:
            # Per test image, its share of right answers over the draws.
            hits = np.mean([fewshot_hits(train_x, train_y, test_x, test_y, shots, seed, l2)[0]
                            for seed in range(self.config.seeds)], axis=0)
            yield f"{shots}shot", float(np.mean(hits))
            yield from mean_interval(hits, f"{shots}shot", self.config.bootstrap)
