"""NMS over a batch sharded on `data`: vmapped as is against per device shard.

Vmapped over a batch split across devices, NMS's data-dependent loop
(`detection/nms.py`) runs until every image of the whole batch is done, and
deciding that takes an all-reduce over the devices at every pass.
`mesh.per_data_shard` runs it on each device's own images instead, as the
Faster R-CNN model does for its RPN proposals and its detections. Both give
the same indices (checked before timing); the report gives the collectives
the compiled loops hold, the passes one call makes (each an all-reduce when
vmapped), replayed in NumPy, and the time per call of each, same run.

    python -m benchmarks.nms_sharded [--devices 8] [--per_device 2] [--boxes 6000]

On a CPU host the devices are faked (`--devices`); on accelerators the real
ones are used.
"""

from __future__ import annotations

import argparse
import os


def measure(per_device: int, boxes_per_image: int, keep: int, repeats: int) -> dict:
    import jax
    import numpy as np

    from benchmarks.nms_speed import passes_per_tile, rpn_like_boxes, seconds_per_call
    from big_vision_like import comm_report
    from big_vision_like import mesh as mesh_lib
    from big_vision_like.detection import nms as nms_lib

    mesh = mesh_lib.make_mesh(-1, 1)
    n_dev = mesh.shape[mesh_lib.DATA]
    boxes, scores = rpn_like_boxes(np.random.default_rng(0), per_device * n_dev,
                                   boxes_per_image)
    sharding = mesh_lib.batch_sharding(mesh)
    boxes, scores = jax.device_put((boxes, scores), sharding)
    batched = jax.vmap(lambda b, s: nms_lib.nms(b, s, 0.7, keep))

    def per_shard(b, s):
        with mesh_lib.tracing_on(mesh):
            return mesh_lib.per_data_shard(batched, (0, 0))(b, s)

    fns = {name: jax.jit(fn, in_shardings=(sharding, sharding))
           for name, fn in (("vmapped", batched), ("per_shard", per_shard))}
    got = {name: fn(boxes, scores) for name, fn in fns.items()}
    for a, b in zip(got["vmapped"], got["per_shard"], strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    passes = np.array([passes_per_tile(b, s, 0.7, 256) for b, s in
                       zip(np.asarray(boxes), np.asarray(scores), strict=True)])
    seconds = {name: float("inf") for name in fns}
    for _ in range(2):  # interleaved rounds: machine noise hits both
        for name, fn in fns.items():
            seconds[name] = min(seconds[name], seconds_per_call(fn, boxes, scores,
                                                                repeats=repeats))
    loops = {name: comm_report.in_loops(fn.lower(boxes, scores).compile().as_text(), n_dev)
             for name, fn in fns.items()}
    return {"device": jax.devices()[0].device_kind, "devices": n_dev,
            "images": int(passes.shape[0]), "boxes": boxes_per_image, "max_output": keep,
            "collectives_in_loops": loops,
            # Vmapped, a tile's loop runs as many passes as the slowest image needs.
            "passes_per_call_vmapped": int(passes.max(axis=0).sum()),
            "passes_per_call_slowest_device": int(passes.reshape(n_dev, per_device, -1)
                                             .max(axis=1).sum(axis=-1).max()),
            "vmapped_ms": 1e3 * seconds["vmapped"], "per_shard_ms": 1e3 * seconds["per_shard"],
            "speedup": seconds["vmapped"] / seconds["per_shard"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=8, help="fake CPU devices")
    parser.add_argument("--per_device", type=int, default=2, help="images per device")
    parser.add_argument("--boxes", type=int, default=6000)
    parser.add_argument("--keep", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    # Read when jax starts its CPU backend (first use), not at import.
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in flags:
        os.environ["XLA_FLAGS"] = (
            f"{flags} --xla_force_host_platform_device_count={args.devices}").strip()
    from benchmarks.nms_speed import report

    report(measure(args.per_device, args.boxes, args.keep, args.repeats), args.json)


if __name__ == "__main__":
    main()
