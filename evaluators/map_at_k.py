"""FastEval-style mean average precision (the paper's mAP@100), on the devices.

Definition computed (per class, the default):

* Rank all evaluation images by the class's score, highest first; equal
  scores keep image order (lax.top_k is stable).
* Keep the top k (k=None: all images).
* Each relevant image in that list counts the precision at the end of its
  group of tied scores (cut at k): so tied images share one precision, as
  in sklearn's `average_precision_score`, to which k=None is identical.
* AP@k = sum of those precisions / min(k, number of positives of the class).
* mAP = mean of AP over the classes with at least one positive, optionally
  weighted by `class_weights` (renormalised over those classes; the paper
  weights by how common a class is).

The public description of FastEval leaves per-class vs per-image ranking
open; `per_image_mean_average_precision` ranks each image's classes
instead (AP over each image's top-k classes, averaged over images with a
label).
"""

from __future__ import annotations

import io
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from big_vision_like import filesystem as fs
from evaluators.bootstrap import jackknife_metrics
from evaluators.common import (
    IMAGE_ID_KEY,
    EvalContext,
    collect_predictions,
    dedup_subsets,
)
from input_pipeline.image_ids import load_ids

# Groups of the jackknife interval (config `bootstrap: N` > 0 turns it on; N above
# this many groups buys nothing a 20-group jackknife does not).
JACKKNIFE_GROUPS = 20


@partial(jax.jit, static_argnames=("k",))
def _ap_rows(scores: jax.Array, labels: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    """AP@k of each row of `scores` [items, rows] (transposed here, inside the
    jit) against boolean `labels`."""
    scores, labels = scores.T, labels.T
    values, index = jax.lax.top_k(scores, k)
    relevant = jnp.take_along_axis(labels, index, axis=1).astype(jnp.float32)
    # Without the barrier XLA:CPU fuses top_k into the scans below and redoes
    # it per element: 40x slower at FastEval's size.
    values, relevant = jax.lax.optimization_barrier((values, relevant))
    hits = jnp.cumsum(relevant, axis=1)
    position = jnp.arange(k)
    last_of_group = jnp.concatenate(
        [values[:, 1:] != values[:, :-1], jnp.ones_like(values[:, :1], bool)], axis=1)
    group_end = jax.lax.cummin(jnp.where(last_of_group, position, k), axis=1, reverse=True)
    precision = jnp.take_along_axis(hits, group_end, axis=1) / (group_end + 1)
    positives = labels.sum(axis=1).astype(jnp.float32)
    ap = (relevant * precision).sum(axis=1) / jnp.maximum(jnp.minimum(float(k), positives), 1)
    return ap, positives


def average_precision(scores, labels, k: int | None = 100) -> tuple[np.ndarray, np.ndarray]:
    """Per-class AP@k and positives per class, for scores/labels [images, classes]."""
    scores = jnp.asarray(scores, jnp.float32)
    labels = jnp.asarray(labels, bool)
    if scores.shape != labels.shape or scores.ndim != 2:
        raise ValueError(f"scores {scores.shape} and labels {labels.shape} must both be "
                         "[images, classes].")
    n = scores.shape[0]
    k = n if k is None else min(int(k), n)
    ap, positives = _ap_rows(scores, labels, k)
    return np.asarray(ap), np.asarray(positives)


def mean_average_precision(scores, labels, k: int | None = 100,
                           class_weights=None) -> float:
    """mAP@k over classes with positives; `k=None` ranks all images."""
    ap, positives = average_precision(scores, labels, k)
    has = positives > 0
    if not has.any():
        raise ValueError("mean_average_precision: no class has a positive label.")
    w = np.ones_like(ap) if class_weights is None else np.asarray(class_weights, np.float64)
    if w.shape != ap.shape:
        raise ValueError(f"class_weights has shape {w.shape}, expected ({ap.shape[0]},).")
    w = w * has
    if w.sum() <= 0:
        raise ValueError("class_weights are zero on every class that has a positive.")
    return float((w * ap).sum() / w.sum())


def per_image_mean_average_precision(scores, labels, k: int | None = 100) -> float:
    """The per-image variant: each image ranks the classes; mean over labelled images."""
    return mean_average_precision(np.asarray(scores).T, np.asarray(labels).T, k)


def load_class_weights(path: str, num_classes: int,
                       subset: tuple[tuple[int, ...], int] | None = None) -> np.ndarray:
    """Per-class weights from a .npy file or a text file of one number per line.

    The paper weights each class's AP by how common the class is among social
    media images, which only a file can carry; its length must match the
    evaluation's classes, or the weights would silently pair with wrong ones.
    `subset` = (classes, all classes) of a class subset: a file with one weight
    per class of the whole label space is cut to the subset's columns.
    """
    with fs.open(str(path), "rb") as f:
        if str(path).endswith(".npy"):
            weights = np.load(io.BytesIO(f.read()))
        else:
            weights = np.loadtxt(f, dtype=np.float64, ndmin=1)
    weights = np.asarray(weights, np.float64)
    if weights.ndim != 1:
        raise ValueError(f"class weights {path!r}: expected one weight per class, "
                         f"got an array of shape {weights.shape}.")
    if subset is not None and len(weights) == subset[1] != num_classes:
        weights = weights[list(subset[0])]
    if len(weights) != num_classes:
        raise ValueError(f"class weights {path!r} hold {len(weights)} weights, but the "
                         f"evaluation has {num_classes} classes.")
    if not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise ValueError(f"class weights {path!r}: weights must be finite and >= 0.")
    return weights


class MapAtKEvaluator:
    """config: data, pp (keeping 'labels' and, to exclude ids, 'image_id'),
    k (default 100), weights ('uniform' or None, 'train_frequency', or the path of
    a .npy file or a text file with one weight per line, one per class),
    per_image (bool), exclude_ids (file of ids or a list), baseline (bool: also
    score the label-frequency baseline). Yields map@K and map_all; with
    exclude_ids also map@K_dedup and map_all_dedup."""

    def __init__(self, config, context: EvalContext):
        self.config, self.ctx = config, context
        self.k = int(config.k)
        self.excluded = load_ids(config.exclude_ids)
        self._weights = None

    def _class_weights(self, num_classes: int):
        spec = self.config.weights
        if spec is None or spec == "uniform":  # None: a config's unset placeholder
            return None
        if self._weights is None:
            if spec == "train_frequency":
                self._weights = np.asarray(self.ctx.train_label_frequencies(), np.float64)
                if self._weights.shape != (num_classes,):
                    raise ValueError(
                        f"train label frequencies cover {self._weights.size} classes, but "
                        f"the evaluation has {num_classes} classes.")
            else:
                subset = (None if self.ctx.classes is None
                          else (self.ctx.classes, self.ctx.all_classes))
                self._weights = load_class_weights(spec, num_classes, subset)
        return self._weights

    def run(self, variables):
        keys = ("labels", IMAGE_ID_KEY) if len(self.excluded) else ("labels",)
        got = collect_predictions(self.ctx, variables, self.config.data, self.config.pp,
                                  self.config.batch_size, keys=keys, pred=self.config.pred)
        scores, labels = got["logits"], got["labels"] > 0.5
        weights = self._class_weights(labels.shape[1])
        subsets = dedup_subsets(got.get(IMAGE_ID_KEY), self.excluded)
        for suffix, keep in subsets.items():
            if keep is None:
                s, y = scores, labels
            else:
                yield "excluded_examples", float((~keep).sum())
                s, y = scores[keep], labels[keep]
            if self.config.per_image:
                yield f"map@{self.k}_per_image{suffix}", per_image_mean_average_precision(
                    s, y, self.k)
            yield f"map@{self.k}{suffix}", mean_average_precision(s, y, self.k, weights)
            yield f"map_all{suffix}", mean_average_precision(s, y, None, weights)
            # The grouped jackknife, not the bootstrap: see evaluators/bootstrap.py.
            yield from jackknife_metrics(
                lambda idx, s=s, y=y, suffix=suffix: {
                    f"map@{self.k}{suffix}": mean_average_precision(s[idx], y[idx], self.k,
                                                                    weights),
                    f"map_all{suffix}": mean_average_precision(s[idx], y[idx], None,
                                                               weights)},
                len(y), min(self.config.bootstrap, JACKKNIFE_GROUPS))
        if self.config.baseline:
            freq = self.ctx.train_label_frequencies()
            constant = np.broadcast_to(freq[None, :], labels.shape)
            yield f"map@{self.k}_frequency_baseline", mean_average_precision(
                constant, labels, self.k, weights)
