"""Train-step images/second: the framework's step beside a plain-flax reference.

Both run the same ResNet module on the same random batch, with softmax
cross-entropy and SGD + momentum 0.9 (the ImageNet recipe), so the ratio is
what the framework's machinery costs (declared shardings, sharding
constraints on the logits, masks, metrics). MFU = model FLOPs per step
(XLA's cost analysis of the step compiled for the CPU) / step time / peak, where the
peak is a large matmul in the compute dtype measured in the same run.
Optionally also times the JFT recipe's shape: an 18,291-way sigmoid head.

    python -m benchmarks.train_step_throughput                      # GPU: R50, 224 px
    python -m benchmarks.train_step_throughput --depth 18 --image_size 64 \
        --batch_size 8 --steps 3 --matmul 1024                      # CPU smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state as flax_train_state

from benchmarks import trace_top_ops
from big_vision_like import mesh as mesh_lib
from big_vision_like import sharding, train_step
from big_vision_like.models.resnet import ResNet
from big_vision_like.tasks.classification import ClassificationTask

DTYPES = {"bfloat16": jnp.bfloat16, "float32": jnp.float32}


def measured_peak_flops(n: int, dtype) -> float:
    a = jax.random.normal(jax.random.key(0), (n, n), dtype)
    b = jax.random.normal(jax.random.key(1), (n, n), dtype)
    mm = jax.jit(lambda a, b: a @ b)
    mm(a, b).block_until_ready()
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(10):
            out = mm(a, b)
        out.block_until_ready()
        best = min(best, (time.perf_counter() - start) / 10)
    return 2 * n ** 3 / best


def time_steps(step, state, batch, steps: int,
               profile_dir: str | None = None) -> tuple[float, object]:
    state, metrics = step(state, batch)  # compile + warm up
    jax.block_until_ready(metrics)
    state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
    start = time.perf_counter()
    for _ in range(steps):
        state, metrics = step(state, batch)
    jax.block_until_ready((state, metrics))
    seconds = (time.perf_counter() - start) / steps
    if profile_dir:  # after the timing, so tracing costs it nothing
        with jax.profiler.trace(profile_dir):
            for _ in range(3):
                state, metrics = step(state, batch)
            jax.block_until_ready((state, metrics))
        print(trace_top_ops.report(trace_top_ops.latest_xplane(profile_dir), steps=3),
              flush=True)
    return seconds, state


def step_flops(task, tx, batch: dict[str, np.ndarray]) -> float:
    """FLOPs of one train step on `batch`, from XLA's cost analysis on the CPU backend.

    A GPU backend turns convolutions into library calls that its cost model
    does not count, so the framework's step is compiled for the host CPU
    instead (compiled, never run), at batch 1 and 2; FLOPs are linear in the
    batch, which gives per-example and per-step (optimizer) parts exactly.
    """
    cpu_mesh = mesh_lib.make_mesh(1, 1, devices=jax.devices("cpu")[:1])
    flops = []
    for b in (1, 2):
        compiled, _, _ = train_step.compile_abstract_step(
            task, tx, cpu_mesh, sharding.HEAD_SHARDED_RULES,
            {k: ((b, *v.shape[1:]), v.dtype) for k, v in batch.items()})
        cost = compiled.cost_analysis()
        cost = cost[0] if isinstance(cost, list) else cost
        flops.append(float(cost["flops"]))
    per_example, per_step = flops[1] - flops[0], 2 * flops[0] - flops[1]
    return per_example * len(next(iter(batch.values()))) + per_step


def framework(task, tx, batch, image_shape, mesh, rules, steps, profile_dir=None):
    state, shardings = train_step.create_train_state(
        task, tx, image_shape, jax.random.key(0), mesh, rules)
    step = train_step.jit_train_step(train_step.make_train_step(task, tx, mesh), shardings,
                                     mesh)
    batch = jax.device_put(batch, mesh_lib.batch_sharding(mesh))
    seconds, _ = time_steps(step, state, batch, steps, profile_dir)
    return seconds


def plain_flax(model, tx, batch, image_shape, steps):
    """What one would write from flax's ImageNet example, nothing more."""
    class State(flax_train_state.TrainState):
        batch_stats: dict

    variables = jax.jit(lambda r: model.init(r, jnp.zeros((1, *image_shape)), train=False))(
        jax.random.key(0))
    state = State.create(apply_fn=model.apply, params=variables["params"], tx=tx,
                         batch_stats=variables["batch_stats"])

    def step(state, batch):
        def loss_fn(params):
            (logits, _), new = model.apply({"params": params, "batch_stats": state.batch_stats},
                                           batch["image"], train=True, mutable=["batch_stats"])
            return optax.softmax_cross_entropy(logits, batch["labels"]).mean(), new
        (loss, new), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        state = state.apply_gradients(grads=grads, batch_stats=new["batch_stats"])
        return state, loss

    jitted = jax.jit(step, donate_argnums=0)
    batch = jax.device_put(batch, jax.devices()[0])  # on device once, as the framework's
    seconds, _ = time_steps(jitted, state, batch, steps)
    return seconds


def model_options(args: argparse.Namespace) -> dict[str, bool]:
    """The ResNet options of models/speed_ops.py that the flags choose."""
    return {"stem_space_to_depth": not args.plain_stem,
            "max_pool_gather_grad": args.max_pool_gather_grad}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=50)
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--batch_size", type=int, default=128, help="global batch")
    parser.add_argument("--dtype", default="bfloat16", choices=sorted(DTYPES))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--matmul", type=int, default=8192, help="peak matmul size")
    parser.add_argument("--no_reference", action="store_true",
                        help="skip the plain-flax reference (batch-size sweeps)")
    parser.add_argument("--jft_head", action="store_true",
                        help="also time ResNet-101, 299 px, 18,291-way sigmoid head")
    parser.add_argument("--plain_stem", action="store_true",
                        help="the stem's 7x7 stride-2 convolution as one, not by space-to-depth")
    parser.add_argument("--max_pool_gather_grad", action="store_true",
                        help="ResNet option of the same name (models/speed_ops.py)")
    parser.add_argument("--only_jft", action="store_true",
                        help="time only the JFT shape (ResNet-101, 299 px, 18,291 sigmoid)")
    parser.add_argument("--jft_depth", type=int, default=101, help="(smoke runs: smaller)")
    parser.add_argument("--jft_image_size", type=int, default=299)
    parser.add_argument("--no_flops", action="store_true",
                        help="skip the FLOP count (and MFU): attempts compare img/s")
    parser.add_argument("--profile_dir", default=None,
                        help="after timing, trace 3 steps with jax.profiler into this folder "
                             "and print where the device time went")
    parser.add_argument("--json", default=None, help="write results here too")
    args = parser.parse_args()
    dtype = DTYPES[args.dtype]
    device = jax.devices()[0]
    peak = float("nan") if args.no_flops else measured_peak_flops(args.matmul, dtype)
    mesh = mesh_lib.make_mesh(data=-1, model=1)
    rng = np.random.default_rng(0)
    results = {"device": device.device_kind, "devices": jax.device_count(),
               "dtype": args.dtype, "peak_matmul_tflops": peak / 1e12,
               "batch_size": args.batch_size, **model_options(args),
               "xla_flags": os.environ.get("XLA_FLAGS", ""), "runs": []}

    def run(name, depth, size, num_classes, loss, with_reference):
        shape = (size, size, 3)
        batch = {"image": rng.normal(size=(args.batch_size, *shape)).astype(np.float32),
                 "labels": np.eye(num_classes, dtype=np.float32)[
                     rng.integers(0, num_classes, args.batch_size)]}
        model = ResNet(depth=depth, num_classes=num_classes, dtype=dtype, **model_options(args))
        task = ClassificationTask(model, num_classes, loss)
        tx = optax.sgd(0.1, momentum=0.9)
        profile_dir = args.profile_dir and os.path.join(args.profile_dir, f"r{depth}")
        seconds = framework(task, tx, batch, shape, mesh, sharding.HEAD_SHARDED_RULES,
                            args.steps, profile_dir)
        row = {"name": name, "img_per_s": args.batch_size / seconds, "step_ms": seconds * 1e3}
        if not args.no_flops:
            flops = step_flops(task, tx, batch)
            row.update(tflops_per_step=flops / 1e12,
                       mfu_vs_measured_peak=flops / seconds / peak)
        if with_reference and not args.no_reference:
            ref = plain_flax(model, tx, batch, shape, args.steps)
            row.update(reference_img_per_s=args.batch_size / ref,
                       ratio_framework_over_reference=ref / seconds)
        results["runs"].append(row)
        print(json.dumps(row), flush=True)

    jobs = [(f"ResNet-{args.depth} {args.image_size}px softmax 1000", args.depth,
             args.image_size, 1000, "softmax_xent", True)]
    if args.only_jft:
        jobs = []
    if args.jft_head or args.only_jft:
        jobs.append((f"ResNet-{args.jft_depth} {args.jft_image_size}px sigmoid 18291 (JFT)",
                     args.jft_depth, args.jft_image_size, 18291, "sigmoid_xent", False))
    for job in jobs:
        try:
            run(*job)
        except Exception as e:  # e.g. out of memory: report it, keep the other rows
            print(f"{job[0]}: failed: {type(e).__name__}: {str(e)[:300]}", flush=True)

    print(f"\ndevice: {device.device_kind} x{jax.device_count()}, {args.dtype}, global batch "
          f"{args.batch_size}; measured matmul peak {peak / 1e12:.1f} TFLOP/s")
    print(f"{'run':<42} {'img/s':>9} {'ms/step':>8} {'MFU':>6} {'ref img/s':>10} {'ratio':>6}")
    nan = float("nan")
    for r in results["runs"]:
        print(f"{r['name']:<42} {r['img_per_s']:>9.1f} {r['step_ms']:>8.1f} "
              f"{r.get('mfu_vs_measured_peak', nan):>6.1%} "
              f"{r.get('reference_img_per_s', nan):>10.1f}"
              f" {r.get('ratio_framework_over_reference', nan):>6.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
