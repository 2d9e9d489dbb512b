"""Per-device memory of the 18,291-way head and its optimizer state, by mesh.

From XLA's memory analysis of the compiled train step (nothing runs), on
8 devices (fake CPU devices are enough):

    python -m benchmarks.head_memory [--full]

The head-only step (pre-logit features -> head -> sigmoid loss -> RMSProp)
isolates the head: its arguments are the head's parameters, its two
RMSProp slots and a batch of features. --full also compiles the whole
ResNet-101 step at 299 px, in the `--layout` head or fsdp.
"""

from __future__ import annotations

import argparse
import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax.numpy as jnp

from big_vision_like import mesh as mesh_lib
from big_vision_like import optim, sharding
from big_vision_like.memory import HeadOnly, train_step_memory
from big_vision_like.models.resnet import ResNet
from big_vision_like.tasks.classification import round_up_classes

MESHES = [(8, 1), (4, 2), (2, 4), (1, 8)]
NUM_CLASSES = 18_291
MIB = 2 ** 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--layout", default="head", choices=["head", "fsdp"],
                        help="sharding preset of the --full ResNet-101 step")
    parser.add_argument("--batch_size", type=int, default=256, help="global batch")
    args = parser.parse_args()
    tx = optim.build_optimizer({"name": "rmsprop", "weight_decay": 1e-4}, 1e-3)
    header = (f"{'mesh data x model':<18} {'head width':>10} {'head+opt MiB/dev':>17} "
              f"{'from shardings':>15} {'vs 8x1':>7}")
    if args.full:
        header += (f" {'R101 state MiB/dev':>19} {'step args MiB/dev':>18}"
                   f" {'temp MiB/dev':>13}  ({args.layout})")
    print(header)
    base = None
    for data, model_axis in MESHES:
        mesh = mesh_lib.make_mesh(data, model_axis)
        width = round_up_classes(NUM_CLASSES, mesh)
        head = train_step_memory(HeadOnly(width), tx, mesh, sharding.HEAD_SHARDED_RULES,
                                 (2048,), args.batch_size, NUM_CLASSES)
        batch_bytes = args.batch_size // data * (2048 + NUM_CLASSES) * 4
        head_bytes = head.arguments - batch_bytes
        base = base or head_bytes
        row = (f"{f'{data} x {model_axis}':<18} {width:>10} {head_bytes / MIB:>17.1f} "
               f"{head.state / MIB:>15.1f} {head_bytes / base:>7.3f}")
        if args.full:
            full = train_step_memory(
                ResNet(depth=101, num_classes=width, dtype=jnp.bfloat16), tx, mesh,
                sharding.PRESETS[args.layout], (299, 299, 3), args.batch_size, NUM_CLASSES)
            row += (f" {full.state / MIB:>19.1f} {full.arguments / MIB:>18.1f}"
                    f" {full.temporaries / MIB:>13.1f}")
        print(row, flush=True)


if __name__ == "__main__":
    main()
