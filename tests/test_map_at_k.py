"""mAP@k against independent references: sklearn for full AP, a plain loop for AP@k."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from big_vision_like.config import schema
from evaluators.common import EvalContext
from evaluators.map_at_k import (
    MapAtKEvaluator,
    average_precision,
    mean_average_precision,
    per_image_mean_average_precision,
)
from input_pipeline.keys import MASK_KEY


def ap_at_k_loop(scores, labels, k):
    """Straightforward per-class reference of the documented definition."""
    out = []
    for c in range(scores.shape[1]):
        s, y = scores[:, c], labels[:, c]
        order = sorted(range(len(s)), key=lambda i: (-s[i], i))[:k]
        positives = int(y.sum())
        if positives == 0:
            out.append(np.nan)
            continue
        total = 0.0
        for r, i in enumerate(order):
            if y[i]:
                end = r  # end of this score's tie group, within the top k
                while end + 1 < len(order) and s[order[end + 1]] == s[i]:
                    end += 1
                total += sum(y[order[j]] for j in range(end + 1)) / (end + 1)
        out.append(total / min(k, positives))
    return np.array(out)


def random_problem(seed, n=300, c=40, levels=7):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, levels, (n, c)).astype(np.float32)  # many ties
    labels = rng.random((n, c)) < rng.uniform(0.005, 0.3, c)
    labels[:, :3] = False  # classes without positives
    return scores, labels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_full_map_equals_sklearn_per_class_averaged(seed):
    scores, labels = random_problem(seed)
    has = labels.any(0)
    want = np.mean([average_precision_score(labels[:, c], scores[:, c])
                    for c in np.flatnonzero(has)])
    assert mean_average_precision(scores, labels, k=None) == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("seed,k", [(0, 10), (1, 37), (2, 100), (3, 300)])
def test_ap_at_k_equals_the_per_class_loop(seed, k):
    scores, labels = random_problem(seed)
    ap, positives = average_precision(scores, labels, k)
    want = ap_at_k_loop(scores, labels, k)
    has = positives > 0
    np.testing.assert_allclose(ap[has], want[has], rtol=1e-5)
    assert np.isnan(want[~has]).all()


def test_weights_and_per_image_variant():
    scores, labels = random_problem(4)
    w = np.random.default_rng(0).random(scores.shape[1])
    ref = ap_at_k_loop(scores, labels, 100)
    has = ~np.isnan(ref)
    want = (w[has] * ref[has]).sum() / w[has].sum()
    assert mean_average_precision(scores, labels, 100, w) == pytest.approx(want, rel=1e-5)
    ref_img = ap_at_k_loop(scores.T, labels.T, 5)
    got = per_image_mean_average_precision(scores, labels, 5)
    assert got == pytest.approx(np.nanmean(ref_img), rel=1e-5)


def test_perfect_and_useless_rankings():
    labels = np.zeros((50, 3), bool)
    labels[:5, 0] = labels[10:40, 1] = labels[::2, 2] = True
    assert mean_average_precision(labels.astype(np.float32), labels, k=10) == 1.0
    constant = np.ones((50, 3), np.float32)  # every image tied: AP = base rate
    np.testing.assert_allclose(average_precision(constant, labels, None)[0],
                               labels.mean(0), rtol=1e-6)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="must both be"):
        mean_average_precision(np.zeros((3, 2)), np.zeros((3, 3), bool))
    with pytest.raises(ValueError, match="no class has a positive"):
        mean_average_precision(np.zeros((3, 2)), np.zeros((3, 2), bool))


def scores_as_images_context(scores, labels, batch=64):
    """An EvalContext whose 'model' returns its input: the images are the scores."""
    def eval_batches(data_cfg, pp, batch_size):
        for i in range(0, len(scores), batch):
            yield {"image": scores[i:i + batch], "labels": labels[i:i + batch].astype(float),
                   MASK_KEY: np.ones(len(scores[i:i + batch]), bool)}
    return EvalContext(mesh=None,
                       predict_fns={"predict": lambda variables, b: {"logits": b["image"]}},
                       batch_loss=None, eval_batches=eval_batches, batch_size=batch)


def evaluator(scores, labels, **cfg):
    config = schema.evaluator("test", dict(type="map_at_k", data=dict(split="fasteval"), pp="",
                                           k=100, **cfg))
    return MapAtKEvaluator(config, scores_as_images_context(scores, labels))


@pytest.mark.parametrize("fmt", ["txt", "npy"])
def test_evaluator_reads_class_weights_from_a_file(tmp_path, fmt):
    scores, labels = random_problem(5)
    w = np.random.default_rng(1).random(scores.shape[1])
    path = tmp_path / f"weights.{fmt}"
    if fmt == "npy":
        np.save(path, w)
    else:
        path.write_text("".join(f"{float(x)!r}\n" for x in w))  # one float per line
    got = dict(evaluator(scores, labels, weights=str(path)).run(None))
    assert got["map@100"] == pytest.approx(mean_average_precision(scores, labels, 100, w))
    assert got["map@100"] != pytest.approx(mean_average_precision(scores, labels, 100))
    # An unset placeholder (None) means uniform weights, like 'uniform'.
    uniform = dict(evaluator(scores, labels, weights=None).run(None))
    assert uniform["map@100"] == pytest.approx(mean_average_precision(scores, labels, 100))


def test_class_weights_of_the_wrong_length_name_both_lengths(tmp_path):
    scores, labels = random_problem(6)  # 40 classes
    path = tmp_path / "weights.txt"
    path.write_text("1.0\n" * 39)
    with pytest.raises(ValueError, match=r"39 weights.*40 classes"):
        dict(evaluator(scores, labels, weights=str(path)).run(None))
