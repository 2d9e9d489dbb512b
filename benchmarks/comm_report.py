"""Communication per train step: ResNet-101, 18,291-way head, by layout and size.

    python -m benchmarks.comm_report [--devices 8 16 32 64] [--depth 101] [--image_size 299]

For each device count (a subprocess with that many fake CPU devices) and
layout (replicated: N x 1; head-sharded: N/4 x 4; fsdp: N/4 x 4 with the
backbone and its optimizer state over `data`), compiles the train step
(nothing runs) and sums the bytes one device sends per step by collective
kind; beside it the paper's parameter-server traffic (each worker pulls and
pushes every parameter each step) and step-time floors on stated links.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

LINKS = {"NVLink4 450 GB/s": 450e9, "IB NDR 50 GB/s": 50e9, "25GbE 3.1 GB/s": 3.125e9}
LAYOUTS = {"replicated": ("replicated", 1), "head-sharded": ("head", 4), "fsdp": ("fsdp", 4)}


def measure(devices: int, layout: str, depth: int, image_size: int, per_device_batch: int,
            num_classes: int) -> dict:
    """Runs in a process that has `devices` fake CPU devices."""
    import jax

    from big_vision_like import comm_report, sharding, train_step
    from big_vision_like import mesh as mesh_lib
    from big_vision_like.models.resnet import ResNet
    from big_vision_like.optim import build_optimizer
    from big_vision_like.tasks.classification import ClassificationTask, round_up_classes

    preset, model_axis = LAYOUTS[layout]
    model_axis = min(model_axis, devices)
    mesh = mesh_lib.make_mesh(devices // model_axis, model_axis)
    task = ClassificationTask(ResNet(depth=depth, num_classes=round_up_classes(
        num_classes, mesh), dtype=jax.numpy.bfloat16), num_classes)
    tx = build_optimizer({"name": "rmsprop", "weight_decay": 1e-4}, 1e-3)
    batch = per_device_batch * mesh.shape["data"]
    compiled, abstract, _ = train_step.compile_abstract_step(
        task, tx, mesh, sharding.PRESETS[preset],
        {"image": ((batch, image_size, image_size, 3), jax.numpy.float32),
         "labels": ((batch, num_classes), jax.numpy.float32)})
    hlo = compiled.as_text()
    params = sum(x.size for x in jax.tree.leaves(abstract.params))
    return {"devices": devices, "layout": layout, "mesh": f"{mesh.shape['data']}x{model_axis}",
            "params": int(params), "collectives": comm_report.collectives(hlo, devices)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[8, 16, 32, 64])
    parser.add_argument("--depth", type=int, default=101)
    parser.add_argument("--image_size", type=int, default=299)
    parser.add_argument("--per_device_batch", type=int, default=32)
    parser.add_argument("--num_classes", type=int, default=18_291)
    parser.add_argument("--layouts", nargs="+", default=list(LAYOUTS))
    parser.add_argument("--_worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._worker:
        row = measure(int(args._worker[0]), args._worker[1], args.depth, args.image_size,
                      args.per_device_batch, args.num_classes)
        print("RESULT " + json.dumps(row))
        return
    rows = []
    for devices in args.devices:
        for layout in args.layouts:
            env = dict(os.environ, JAX_PLATFORMS="cpu",
                       XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
            cmd = [sys.executable, "-m", "benchmarks.comm_report", "--_worker", str(devices),
                   layout, "--depth", str(args.depth), "--image_size", str(args.image_size),
                   "--per_device_batch", str(args.per_device_batch),
                   "--num_classes", str(args.num_classes)]
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.split("RESULT ", 1)[1]))
            print(_format(rows[-1]), flush=True)
    ps = 2 * 4 * rows[0]["params"]  # float32 pull + push of every parameter
    print(f"\nparameter-server traffic (paper): {ps / 2**20:.0f} MiB per worker step "
          f"(pull + push of {rows[0]['params'] / 1e6:.1f}M float32 parameters); "
          + ", ".join(f"{name}: {ps / bw * 1e3:.1f} ms" for name, bw in LINKS.items()))


def _format(row: dict) -> str:
    c = row["collectives"]
    total = sum(v["bytes_sent"] for v in c.values())
    kinds = ", ".join(f"{k} {v['bytes_sent'] / 2**20:.1f} MiB ({v['count']})"
                      for k, v in sorted(c.items()))
    floors = ", ".join(f"{name}: {total / bw * 1e3:.2f} ms" for name, bw in LINKS.items())
    return (f"{row['devices']:>3} devices  {row['layout']:<12} mesh {row['mesh']:<5} "
            f"sent/device {total / 2**20:8.1f} MiB  [{kinds}]  floor {floors}")


if __name__ == "__main__":
    main()
