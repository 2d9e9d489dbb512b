"""Bootstrap intervals over evaluation images: the percentile interval against scipy's,
and each evaluator's interval against the same resamples scored by a reference."""

import numpy as np
import pytest
import scipy.stats
import sklearn.metrics

from big_vision_like import mesh as mesh_lib
from evaluators import bootstrap
from evaluators.map_at_k import mean_average_precision
from tests.test_map_at_k import evaluator as map_evaluator
from tests.test_map_at_k import random_problem
from tests.test_segmentation import C, _evaluator, _random_eval_batches


def test_the_interval_of_a_mean_agrees_with_scipys_percentile_bootstrap():
    hits = np.random.default_rng(0).random(500) < 0.8
    [(_, lo), (_, hi)] = bootstrap.mean_interval(hits, "acc", resamples=2000)
    ref = scipy.stats.bootstrap((hits.astype(float),), np.mean, n_resamples=2000,
                                method="percentile", random_state=1).confidence_interval
    assert lo == pytest.approx(ref.low, abs=0.006) and hi == pytest.approx(ref.high, abs=0.006)
    # About 1.96 standard errors either side of the mean.
    half = 1.96 * np.sqrt(0.8 * 0.2 / 500)
    assert hi - lo == pytest.approx(2 * half, rel=0.1)


def test_resamples_are_reproducible_and_off_by_default():
    a = bootstrap.resample_indices(10, 3, seed=0)
    np.testing.assert_array_equal(a, bootstrap.resample_indices(10, 3, seed=0))
    assert a.shape == (3, 10) and a.min() >= 0 and a.max() < 10
    assert list(bootstrap.mean_interval(np.ones(4), "acc", resamples=0)) == []
    with pytest.raises(ValueError, match="no evaluation images"):
        bootstrap.resample_indices(0, 3)


def test_map_at_k_interval_is_the_grouped_jackknife_over_images():
    scores, labels = random_problem(5)
    got = dict(map_evaluator(scores, labels, bootstrap=200).run(None))
    labels = labels > 0.5
    n, g = len(labels), 20  # bootstrap=200 asks for an interval; 20 groups give it
    parts = np.array_split(np.random.default_rng(0).permutation(n), g)
    leave_out = [mean_average_precision(np.delete(scores, p, 0), np.delete(labels, p, 0), 100)
                 for p in parts]
    se = np.sqrt((g - 1) / g * np.sum((np.array(leave_out) - np.mean(leave_out)) ** 2))
    half = scipy.stats.t.ppf(0.975, g - 1) * se
    assert got["map@100_ci95_lo"] == pytest.approx(got["map@100"] - half, rel=1e-6)
    assert got["map@100_ci95_hi"] == pytest.approx(got["map@100"] + half, rel=1e-6)
    assert got["map_all_ci95_lo"] < got["map_all"] < got["map_all_ci95_hi"]


def test_resampling_with_replacement_biases_ap_at_k_upwards():
    """Why map@k takes the jackknife: duplicated positives raise AP@k, so with rare
    classes the bootstrap's draws sit above the value they should surround."""
    rng = np.random.default_rng(0)
    n, c = 2000, 200
    labels = rng.random((n, c)) < rng.choice([0.001, 0.005, 0.02], c)
    scores = rng.normal(size=(n, c)) + labels * (rng.random(c) < 0.3)
    value = mean_average_precision(scores, labels, 100)
    draws = [mean_average_precision(scores[i], labels[i], 100)
             for i in bootstrap.resample_indices(n, 30)]
    assert np.mean(draws) > value * 1.05
    assert np.percentile(draws, 2.5) > value * 0.98  # the interval all but misses it


def test_miou_interval_resamples_whole_images_against_sklearn():
    mesh = mesh_lib.make_mesh(8, 1)
    host, device = _random_eval_batches(np.random.default_rng(3), mesh)
    got = dict(_evaluator(mesh, device, bootstrap=30).run(None))
    # Each real image's (true, predicted) pixels, scored by sklearn on every resample.
    images = [(b["segmentation"][i, ..., 0].ravel(), b["image"][i].argmax(-1).ravel())
              for b in host for i in np.flatnonzero(b["_mask"])]
    draws = []
    for idx in bootstrap.resample_indices(len(images), 30):
        true = np.concatenate([images[i][0] for i in idx])
        pred = np.concatenate([images[i][1] for i in idx])
        keep = true != 255
        draws.append(sklearn.metrics.jaccard_score(true[keep], pred[keep], labels=range(C),
                                                   average=None).mean())
    assert got["miou_ci95_lo"] == pytest.approx(np.percentile(draws, 2.5), rel=1e-6)
    assert got["miou_ci95_hi"] == pytest.approx(np.percentile(draws, 97.5), rel=1e-6)
    assert got["miou_ci95_lo"] < got["miou"] < got["miou_ci95_hi"]
