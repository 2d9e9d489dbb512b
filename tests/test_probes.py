"""Few-shot ridge and the linear probe against independent references."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression, Ridge

from evaluators import classification, fewshot, linear_probe


def blobs(seed, n=240, d=12, classes=4):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 2, (classes, d))
    y = rng.integers(0, classes, n)
    return centres[y] + rng.normal(size=(n, d)), y


def test_ridge_from_one_eigendecomposition_equals_float64_solves_and_sklearn():
    x, y = blobs(0)
    xw, = fewshot.whiten(x)
    targets = 2.0 * (y[:, None] == np.arange(4)) - 1.0
    l2s = [1e-3, 1.0, 100.0]
    for l2, w in zip(l2s, fewshot.ridge_solutions(xw, targets, l2s)):
        want = np.linalg.solve(xw.T @ xw + l2 * np.eye(xw.shape[1]), xw.T @ targets)
        np.testing.assert_allclose(w, want, rtol=1e-8, atol=1e-10)
        sk = Ridge(alpha=l2, fit_intercept=False).fit(xw, targets).coef_.T
        np.testing.assert_allclose(w, sk, rtol=1e-6, atol=1e-8)


def test_fewshot_learns_and_chooses_l2_without_the_test_split():
    x, y = blobs(1, n=600)
    hits, l2 = fewshot.fewshot_hits(x[:400], y[:400], x[400:], y[400:], shots=10, seed=0)
    assert hits.shape == (200,) and hits.mean() > 0.9 and l2 in fewshot.DEFAULT_L2
    idx = fewshot.sample_shots(y, 5, np.random.default_rng(0))
    assert sorted(np.bincount(y[idx]).tolist()) == [5, 5, 5, 5]


def test_linear_probe_matches_sklearn_logistic_regression():
    x, y = blobs(2, n=300)
    x = (x - x.mean(0)) / x.std(0)
    l2 = 1e-2
    params = linear_probe.fit_logistic_regression(
        np.float32(x), y, num_classes=4, l2=l2, max_iter=500)
    # sklearn: 0.5|w|^2 + C * sum(loss)  ==  n/l2 * (mean(loss) + l2/2 |w|^2)
    sk = LogisticRegression(C=1 / (l2 * len(x)), tol=1e-10, max_iter=10_000).fit(x, y)
    logits = x @ np.asarray(params["w"]) + np.asarray(params["b"])
    ours = np.exp(logits - logits.max(1, keepdims=True))
    ours /= ours.sum(1, keepdims=True)
    np.testing.assert_allclose(ours, sk.predict_proba(x), atol=2e-3)
    hits = linear_probe.probe_hits(x[:200], y[:200], x[200:], y[200:], l2)
    assert hits.mean() == pytest.approx(np.mean(sk.predict(x[200:]) == y[200:]), abs=0.02)


def test_topk_accuracy_and_loss():
    logits = np.array([[3.0, 2, 1, 0, -1, -2], [0, 1, 2, 3, 4, 5]])
    labels = np.array([0, 0])
    assert classification.topk_accuracy(logits, labels, 1) == 0.5
    assert classification.topk_accuracy(logits, labels, 5) == 0.5
    assert classification.topk_accuracy(logits, labels, 6) == 1.0
    z = logits - logits.max(1, keepdims=True)
    want = -np.mean(z[[0, 1], labels] - np.log(np.exp(z).sum(1)))
    assert classification.softmax_loss(logits, labels) == pytest.approx(want)
