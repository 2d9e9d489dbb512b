"""Anchor/proposal matching (TF OD API ArgMaxMatcher) and balanced minibatch sampling."""

import math

import jax
import jax.numpy as jnp


def match(
    iou: jax.Array,
    gt_valid: jax.Array,
    positive_threshold: float,
    negative_threshold: float,
    force_match: bool,
) -> tuple[jax.Array, jax.Array]:
    """Matches N candidates to G ground-truth boxes from iou [G, N].

    Each candidate takes its best valid gt; label 1 if that IoU >=
    positive_threshold, 0 if < negative_threshold, -1 (ignored) in between.
    With force_match every valid gt's best candidate (if its IoU > 0) becomes
    positive for that gt (a candidate that is several gts' best goes to the
    lowest gt index, as in TF). Without valid gt all candidates are negative.
    Returns (matched_gt [N] int32, 0 for non-positives; labels [N] int32).
    """
    if iou.ndim != 2 or gt_valid.shape != iou.shape[:1]:
        raise ValueError(
            f"match wants iou [G, N] and gt_valid [G], got {iou.shape} and {gt_valid.shape}.")
    if negative_threshold > positive_threshold:
        raise ValueError(
            f"negative_threshold {negative_threshold} > positive_threshold "
            f"{positive_threshold}; the ignore band must not be negative.")
    gt_valid = gt_valid.astype(bool)
    masked = jnp.where(gt_valid[:, None], iou, -1.0)
    best_gt = jnp.argmax(masked, axis=0).astype(jnp.int32)
    best_iou = jnp.max(masked, axis=0)
    labels = jnp.where(best_iou >= positive_threshold, 1,
                       jnp.where(best_iou < negative_threshold, 0, -1))
    labels = jnp.where(jnp.any(gt_valid), labels, 0)
    if force_match:
        n = iou.shape[1]
        best_cand = jnp.argmax(masked, axis=1)
        forceable = gt_valid & (jnp.max(masked, axis=1) > 0)
        hits = jax.nn.one_hot(best_cand, n, dtype=bool) & forceable[:, None]
        forced = jnp.any(hits, axis=0)
        best_gt = jnp.where(forced, jnp.argmax(hits, axis=0).astype(jnp.int32), best_gt)
        labels = jnp.where(forced, 1, labels)
    labels = labels.astype(jnp.int32)
    return jnp.where(labels == 1, best_gt, 0), labels


def _random_ranks(key: jax.Array, members: jax.Array) -> jax.Array:
    """Rank of each member in a uniformly random order of the members (others rank last)."""
    u = jax.random.uniform(key, members.shape)
    order = jnp.argsort(jnp.where(members, u, 2.0))
    return jnp.zeros(members.shape, jnp.int32).at[order].set(
        jnp.arange(members.shape[0], dtype=jnp.int32))


def balanced_sample(
    labels: jax.Array, rng: jax.Array, batch_size: int, positive_fraction: float
) -> jax.Array:
    """Samples up to batch_size candidates [N] -> bool [N] (TF OD API minibatch sampler).

    At most floor(batch_size * positive_fraction) positives (labels == 1),
    uniformly at random, then negatives (labels == 0) uniformly to fill up to
    batch_size. Ignored candidates (-1) are never sampled.
    """
    if labels.ndim != 1:
        raise ValueError(f"balanced_sample wants labels [N], got {labels.shape}; vmap a batch.")
    if not 0.0 <= positive_fraction <= 1.0:
        raise ValueError(f"positive_fraction must be in [0, 1], got {positive_fraction}.")
    pos, neg = labels == 1, labels == 0
    pos_key, neg_key = jax.random.split(rng)
    max_pos = math.floor(batch_size * positive_fraction)
    take_pos = pos & (_random_ranks(pos_key, pos) < max_pos)
    room = batch_size - jnp.sum(take_pos)
    take_neg = neg & (_random_ranks(neg_key, neg) < room)
    return take_pos | take_neg
