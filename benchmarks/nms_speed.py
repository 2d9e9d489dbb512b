"""Greedy NMS by tiles (detection/nms.py) against the box-by-box loop, timed.

The RPN's shape: the best `rpn_pre_nms` boxes of an image (6,000 in Faster
R-CNN's recipe), RPN-like boxes (clusters of overlapping candidates around
objects), vmapped over a batch of images. The box-by-box loop, the project's
earlier NMS, is the in-run baseline: one dependent loop step per box. Both
return the same indices (checked before timing).

    python -m benchmarks.nms_speed [--boxes 6000] [--batch 2] [--json F]
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from big_vision_like.detection import boxes as box_ops
from big_vision_like.detection import nms as nms_lib


def nms_box_by_box(boxes: jax.Array, scores: jax.Array, iou_threshold: float,
                   max_output: int) -> tuple[jax.Array, jax.Array]:
    """The sequential greedy loop: box i waits for boxes 0..i-1."""
    n = boxes.shape[0]
    order = jnp.argsort(-scores, stable=True)
    overlaps = box_ops.iou(boxes[order], boxes[order]) > iou_threshold

    def visit(i, state):
        kept, count = state
        ok = (count < max_output) & ~jnp.any(kept & overlaps[i])
        return kept.at[i].set(ok), count + ok.astype(jnp.int32)

    kept, _ = jax.lax.fori_loop(0, n, visit, (jnp.zeros((n,), bool), jnp.int32(0)))
    slot = jnp.where(kept, jnp.cumsum(kept) - 1, max_output)
    indices = jnp.zeros((max_output,), jnp.int32).at[slot].set(order.astype(jnp.int32),
                                                               mode="drop")
    return indices, jnp.arange(max_output) < jnp.sum(kept)


def rpn_like_boxes(rng: np.random.Generator, batch: int, n: int) -> tuple[np.ndarray, ...]:
    """[batch, n, 4] boxes in 0..1: jittered copies around 30 objects per image and
    background boxes, scores higher near objects."""
    objects = rng.uniform(0.0, 0.8, (batch, 30, 2))
    sizes = rng.uniform(0.05, 0.2, (batch, 30, 2))
    which = rng.integers(0, 30, (batch, n))
    take = np.take_along_axis
    centre = take(objects, which[..., None], 1) + rng.normal(0, 0.02, (batch, n, 2))
    size = take(sizes, which[..., None], 1) * rng.uniform(0.7, 1.3, (batch, n, 2))
    background = rng.random((batch, n)) < 0.3
    centre[background] = rng.uniform(0.0, 1.0, (background.sum(), 2))
    boxes = np.concatenate([centre, centre + size], axis=-1).astype(np.float32)
    scores = (rng.random((batch, n)) + 1.0 * ~background).astype(np.float32)
    return boxes, scores


def passes_per_tile(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float,
                    tile: int) -> list[int]:
    """The passes of the within-tile loop of one image's NMS by tiles, per tile
    (the last pass confirms that nothing changed), replayed in NumPy. The cap
    on kept boxes is left out: it does not change the passes."""
    order = np.argsort(-scores, kind="stable")
    overlaps = np.asarray(box_ops.iou(jnp.asarray(boxes[order]),
                                      jnp.asarray(boxes[order]))) > iou_threshold
    n = len(scores)
    _, tile = nms_lib.tile_layout(n, tile)
    kept, passes = np.zeros(n, bool), []
    for start in range(0, n, tile):
        span = slice(start, start + tile)
        candidates = ~np.any(kept[:, None] & overlaps[:, span], axis=0)
        within = np.triu(overlaps[span, span], k=1)
        keep, count = candidates, 0
        while True:
            count += 1
            new = candidates & ~np.any(keep[:, None] & within, axis=0)
            if np.array_equal(new, keep):
                break
            keep = new
        kept[span] = keep
        passes.append(count)
    return passes


def dependent_steps(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float,
                    tile: int) -> int:
    """The loop steps one image's NMS by tiles takes, each waiting on the one
    before: one per tile plus its passes; the box-by-box loop takes one per box."""
    return sum(p + 1 for p in passes_per_tile(boxes, scores, iou_threshold, tile))


def seconds_per_call(fn, *args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))  # compile
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - start)
    return best


def report(result: dict, path: str | None) -> None:
    """Prints `result`, and writes it to `path` as JSON if given."""
    print(json.dumps(result, indent=1))
    if path:
        with open(path, "w") as f:
            json.dump(result, f, indent=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boxes", type=int, default=6000)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--keep", type=int, default=300, help="max_output (proposals)")
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    boxes, scores = rpn_like_boxes(np.random.default_rng(0), args.batch, args.boxes)
    tiled = jax.jit(jax.vmap(lambda b, s: nms_lib.nms(b, s, 0.7, args.keep, tile=args.tile)))
    loop = jax.jit(jax.vmap(lambda b, s: nms_box_by_box(b, s, 0.7, args.keep)))
    got, want = tiled(boxes, scores), loop(boxes, scores)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # Interleaved rounds: machine noise hits both.
    t_loop, t_tiled = float("inf"), float("inf")
    for _ in range(2):
        t_loop = min(t_loop, seconds_per_call(loop, boxes, scores, repeats=args.repeats))
        t_tiled = min(t_tiled, seconds_per_call(tiled, boxes, scores, repeats=args.repeats))
    result = {"device": jax.devices()[0].device_kind, "boxes": args.boxes,
              "batch": args.batch, "max_output": args.keep, "tile": args.tile,
              "kept_per_image": float(np.asarray(got[1]).sum(-1).mean()),
              "dependent_steps_box_by_box": args.boxes,
              "dependent_steps_tiled": max(dependent_steps(b, s, 0.7, args.tile)
                                           for b, s in zip(boxes, scores, strict=True)),
              "box_by_box_ms": 1e3 * t_loop, "tiled_ms": 1e3 * t_tiled,
              "speedup": t_loop / t_tiled}
    report(result, args.json)


if __name__ == "__main__":
    main()
