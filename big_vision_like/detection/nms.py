"""Greedy non-maximum suppression with static shapes (jit and vmap friendly)."""

import jax
import jax.numpy as jnp

from big_vision_like.detection import boxes as box_ops


def tile_layout(n: int, tile: int) -> tuple[int, int]:
    """(number of tiles, boxes per tile) for n boxes in tiles of at most `tile`: as
    even as they can be, so the padding is least."""
    tiles = max(1, -(-n // max(1, tile)))
    return tiles, max(1, -(-n // tiles))


def nms(
    boxes: jax.Array,
    scores: jax.Array,
    iou_threshold: float,
    max_output: int,
    score_threshold: float = -jnp.inf,
    tile: int = 256,
) -> tuple[jax.Array, jax.Array]:
    """Classic greedy NMS on boxes [N, 4] with scores [N].

    Boxes are visited by descending score (ties: lower index first). A box is kept
    if its IoU with every kept box is <= iou_threshold and its score is >=
    score_threshold; at most max_output are kept.

    Returns (indices [max_output] int32, valid [max_output] bool), kept boxes in
    visiting order; padding slots have index 0 and valid False.

    The result is the greedy one, computed `tile` boxes at a time (as TF's
    padded NMS does): a sequential loop over N boxes is N dependent device steps
    (6,000 for Faster R-CNN's RPN), a loop over tiles N / tile, each a few
    matrix-wide steps.
    """
    n = boxes.shape[0]
    if boxes.shape != (n, 4) or scores.shape != (n,):
        raise ValueError(
            f"nms wants boxes [N, 4] and scores [N], got {boxes.shape} and {scores.shape}; "
            "vmap over any batch or class axis.")
    order = jnp.argsort(-scores, stable=True)
    tiles, tile = tile_layout(n, tile)
    padded = tiles * tile
    # Padding boxes are never eligible: they neither survive nor suppress.
    eligible = jnp.pad(scores[order] >= score_threshold, (0, padded - n))
    sorted_boxes = jnp.pad(boxes[order], ((0, padded - n), (0, 0)))
    # The IoU matrix is computed once: N is at most a few thousand (N^2 bools).
    overlaps = box_ops.iou(sorted_boxes, sorted_boxes) > iou_threshold
    earlier = jnp.triu(jnp.ones((tile, tile), bool), k=1)  # [j, i]: j visited before i

    def visit_tile(t: jax.Array, kept: jax.Array) -> jax.Array:
        start = t * tile
        # Suppressed by a box kept in an earlier tile (later tiles hold no kept box yet).
        columns = jax.lax.dynamic_slice_in_dim(overlaps, start, tile, axis=1)
        candidates = (jax.lax.dynamic_slice_in_dim(eligible, start, tile)
                      & ~jnp.any(kept[:, None] & columns, axis=0))
        within = jax.lax.dynamic_slice_in_dim(columns, start, tile, axis=0) & earlier

        # Within the tile: keep[i] = candidate[i] and no kept j < i overlaps i. Each
        # pass fixes at least the next box in order, so it settles in <= tile
        # passes, and the one set of values that no pass changes is the greedy one.
        def step(state: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
            _, keep = state
            new = candidates & ~jnp.any(keep[:, None] & within, axis=0)
            return jnp.any(new != keep), new

        _, keep = jax.lax.while_loop(lambda state: state[0], step,
                                     (jnp.bool_(True), candidates))
        return jax.lax.dynamic_update_slice_in_dim(kept, keep, start, axis=0)

    kept = jax.lax.fori_loop(0, tiles, visit_tile, jnp.zeros((padded,), bool))[:n]
    # The first max_output kept boxes are what the sequential loop would keep:
    # boxes after the cap only suppress boxes after it.
    kept &= jnp.cumsum(kept) <= max_output
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
