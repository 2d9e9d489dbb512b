"""Greedy non-maximum suppression with static shapes (jit and vmap friendly)."""

import jax
import jax.numpy as jnp

from big_vision_like.detection import boxes as box_ops


def nms(
    boxes: jax.Array,
    scores: jax.Array,
    iou_threshold: float,
    max_output: int,
    score_threshold: float = -jnp.inf,
) -> tuple[jax.Array, jax.Array]:
    """Classic greedy NMS on boxes [N, 4] with scores [N].

    Boxes are visited by descending score (ties: lower index first). A box is kept
    if its IoU with every kept box is <= iou_threshold and its score is >=
    score_threshold; at most max_output are kept.

    Returns (indices [max_output] int32, valid [max_output] bool), kept boxes in
    visiting order; padding slots have index 0 and valid False.
    """
    n = boxes.shape[0]
    if boxes.shape != (n, 4) or scores.shape != (n,):
        raise ValueError(
            f"nms wants boxes [N, 4] and scores [N], got {boxes.shape} and {scores.shape}; "
            "vmap over any batch or class axis.")
    order = jnp.argsort(-scores, stable=True)
    sorted_scores = scores[order]
    # The IoU matrix is computed once: N is at most a few thousand (N^2 floats).
    overlaps = box_ops.iou(boxes[order], boxes[order]) > iou_threshold
    eligible = sorted_scores >= score_threshold

    def visit(i: jax.Array, state: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        kept, count = state
        ok = eligible[i] & (count < max_output) & ~jnp.any(kept & overlaps[i])
        return kept.at[i].set(ok), count + ok.astype(jnp.int32)

    kept, _ = jax.lax.fori_loop(0, n, visit, (jnp.zeros((n,), bool), jnp.int32(0)))
    # Kept boxes go to consecutive output slots; the rest are dropped off the end.
    slot = jnp.where(kept, jnp.cumsum(kept) - 1, max_output)
    indices = jnp.zeros((max_output,), jnp.int32).at[slot].set(
        order.astype(jnp.int32), mode="drop")
    valid = jnp.arange(max_output) < jnp.sum(kept)
    return indices, valid


def multiclass_nms(
    boxes: jax.Array,
    scores: jax.Array,
    iou_threshold: float,
    max_per_class: int,
    max_total: int,
    score_threshold: float = -jnp.inf,
) -> dict[str, jax.Array]:
    """Per-class NMS, then the max_total best detections across classes.

    The final step of the TF OD API's batch_multiclass_non_max_suppression for
    one image: boxes [N, C, 4] (one box per class, as Faster R-CNN's second
    stage predicts), scores [N, C]. Returns boxes [max_total, 4], scores
    [max_total], classes [max_total] int32 and valid [max_total] bool, best score
    first (ties: lower class, then better within the class); invalid slots have
    score 0, class 0, box 0 and valid False.
    """
    n, c = scores.shape
    if boxes.shape != (n, c, 4):
        raise ValueError(
            f"multiclass_nms wants boxes [N, C, 4] matching scores [N, C] = {scores.shape}, "
            f"got {boxes.shape}; use boxes[:, None].repeat(C, 1) for class-agnostic boxes.")
    per_class = jax.vmap(nms, in_axes=(1, 1, None, None, None))
    idx, valid = per_class(boxes, scores, iou_threshold, max_per_class, score_threshold)
    cls_boxes = jnp.take_along_axis(jnp.swapaxes(boxes, 0, 1), idx[..., None], axis=1)
    cls_scores = jnp.take_along_axis(scores.T, idx, axis=1)
    classes = jnp.broadcast_to(jnp.arange(c, dtype=jnp.int32)[:, None], idx.shape)

    flat_boxes = cls_boxes.reshape(-1, 4)
    flat_scores = jnp.where(valid, cls_scores, -jnp.inf).reshape(-1)
    flat_classes = classes.reshape(-1)
    flat_valid = valid.reshape(-1)
    pad = max(0, max_total - flat_scores.shape[0])
    if pad:
        flat_boxes = jnp.pad(flat_boxes, ((0, pad), (0, 0)))
        flat_scores = jnp.pad(flat_scores, (0, pad), constant_values=-jnp.inf)
        flat_classes = jnp.pad(flat_classes, (0, pad))
        flat_valid = jnp.pad(flat_valid, (0, pad))
    # Sort invalid slots last (a valid score may itself be -inf).
    top = jnp.lexsort((jnp.arange(flat_scores.shape[0]), -flat_scores, ~flat_valid))
    top = top[:max_total]
    out_valid = flat_valid[top]
    return {
        "boxes": jnp.where(out_valid[:, None], flat_boxes[top], 0.0),
        "scores": jnp.where(out_valid, flat_scores[top], 0.0),
        "classes": jnp.where(out_valid, flat_classes[top], 0),
        "valid": out_valid,
    }
