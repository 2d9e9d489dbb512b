"""Training targets of Faster R-CNN's two stages, per image (vmap over a batch).

Both stages label candidates (anchors, then proposals) by their best IoU with
the ground truth (`sampling.match`), draw a fixed-size balanced minibatch of
them (`sampling.balanced_sample`) and regress the matched box in the
coordinates of the candidate (`boxes.encode`). Shapes are static: padded
ground truth carries `gt_valid`; candidates that must not be used (anchors
over the padding, empty proposal slots) are labelled -1 (ignored).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from big_vision_like.detection import boxes as box_lib
from big_vision_like.detection import sampling


class AnchorTargets(NamedTuple):
    objectness: jax.Array  # [N] 1.0 for positives, 0.0 otherwise
    weights: jax.Array  # [N] 1.0 where sampled (positive or negative)
    box_targets: jax.Array  # [N, 4] encoded matched gt
    box_weights: jax.Array  # [N] 1.0 where sampled and positive


def anchor_targets(anchors: jax.Array, usable: jax.Array, gt_boxes: jax.Array,
                   gt_valid: jax.Array, rng: jax.Array, batch_size: int,
                   positive_fraction: float, iou_thresholds: tuple[float, float]
                   ) -> AnchorTargets:
    """RPN targets: positive at IoU >= thresholds[0] (and each gt's best anchor),
    negative below thresholds[1]; `usable` [N] False for anchors never trained."""
    iou = box_lib.iou(gt_boxes, anchors)
    matched, labels = sampling.match(iou, gt_valid, iou_thresholds[0], iou_thresholds[1],
                                     force_match=True)
    labels = jnp.where(usable, labels, -1)
    sampled = sampling.balanced_sample(labels, rng, batch_size, positive_fraction)
    positive = sampled & (labels == 1)
    return AnchorTargets(
        objectness=positive.astype(jnp.float32), weights=sampled.astype(jnp.float32),
        box_targets=box_lib.encode(gt_boxes[matched], anchors),
        box_weights=positive.astype(jnp.float32))


class RoiTargets(NamedTuple):
    rois: jax.Array  # [S, 4] the sampled proposals, pixels
    classes: jax.Array  # [S] int32: 0 background, 1 + class id for positives
    weights: jax.Array  # [S] 1.0 for filled slots
    box_targets: jax.Array  # [S, 4] encoded matched gt (used where classes > 0)


def roi_targets(proposals: jax.Array, proposal_valid: jax.Array, gt_boxes: jax.Array,
                gt_classes: jax.Array, gt_valid: jax.Array, rng: jax.Array,
                batch_size: int, positive_fraction: float,
                iou_thresholds: tuple[float, float], add_gt: bool) -> RoiTargets:
    """Box-classifier minibatch: `batch_size` slots filled with sampled proposals
    (positives first in proposal order, then negatives), the rest empty."""
    if add_gt:  # as Detectron does; the paper's implementation does not
        proposals = jnp.concatenate([proposals, gt_boxes])
        proposal_valid = jnp.concatenate([proposal_valid, gt_valid])
    iou = box_lib.iou(gt_boxes, proposals)
    matched, labels = sampling.match(iou, gt_valid, iou_thresholds[0], iou_thresholds[1],
                                     force_match=False)
    labels = jnp.where(proposal_valid, labels, -1)
    sampled = sampling.balanced_sample(labels, rng, batch_size, positive_fraction)
    slots = min(batch_size, proposals.shape[0])
    # Sampled candidates first (stable), so the static slots hold all of them.
    order = jnp.argsort(~sampled, stable=True)[:slots]
    filled = sampled[order]
    positive = filled & (labels[order] == 1)
    gt = matched[order]
    return RoiTargets(
        rois=proposals[order],
        classes=jnp.where(positive, gt_classes[gt].astype(jnp.int32) + 1, 0),
        weights=filled.astype(jnp.float32),
        box_targets=box_lib.encode(gt_boxes[gt], proposals[order]))
