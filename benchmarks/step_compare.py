"""Times the framework train step of several tasks on one machine in one run, so
their ratio is not moved by a shared machine's noise between runs."""

from __future__ import annotations

import argparse
import json
from typing import Any

from benchmarks.train_step_throughput import (
    DTYPES,
    framework,
    measured_peak_flops,
    step_flops,
)
from big_vision_like import sharding


def time_jobs(jobs: dict[str, tuple[Any, dict]], tx: Any, image_shape: tuple[int, ...],
              mesh: Any, steps: int, batch_size: int, peak: float | None = None
              ) -> dict[str, dict[str, float]]:
    """{name: {img_per_s, step_ms}} for each (task, batch) job; a job that fails (out
    of memory, say) is reported and left out so the others still give their rows.
    With `peak` (FLOP/s, `peak_flops`), also the model FLOPs utilisation."""
    runs = {}
    for name, (task, batch) in jobs.items():
        try:
            seconds = framework(task, tx, batch, image_shape, mesh,
                                sharding.HEAD_SHARDED_RULES, steps)
        except Exception as e:
            print(f"{name}: failed: {type(e).__name__}: {str(e)[:300]}", flush=True)
            continue
        runs[name] = {"img_per_s": batch_size / seconds, "step_ms": seconds * 1e3}
        if peak:
            flops = step_flops(task, tx, batch)
            runs[name].update(tflops_per_step=flops / 1e12,
                              mfu_vs_measured_peak=flops / seconds / peak)
        print(json.dumps({"name": name, **runs[name]}), flush=True)
    print(f"{'run':<14} {'img/s':>9} {'ms/step':>10} {'MFU':>6}")
    for name, r in runs.items():
        mfu = f"{r['mfu_vs_measured_peak']:.1%}" if "mfu_vs_measured_peak" in r else "-"
        print(f"{name:<14} {r['img_per_s']:>9.3f} {r['step_ms']:>10.1f} {mfu:>6}")
    return runs


def peak_flops(args: Any, dtype: Any) -> float | None:
    """The measured matmul peak when `--mfu` is given (accelerators; a CPU's is noise)."""
    if not args.mfu:
        return None
    peak = measured_peak_flops(args.matmul, dtype)
    print(f"measured matmul peak {peak / 1e12:.1f} TFLOP/s", flush=True)
    return peak


def parse_flags(description: str, image_size: int, batch_size: int, num_classes: int
                ) -> argparse.Namespace:
    """The flags every task-step comparison takes, with its own defaults."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--depth", type=int, default=101)
    parser.add_argument("--image_size", type=int, default=image_size)
    parser.add_argument("--batch_size", type=int, default=batch_size, help="global batch")
    parser.add_argument("--num_classes", type=int, default=num_classes)
    parser.add_argument("--dtype", default="float32", choices=sorted(DTYPES))
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--json", default=None, help="write results here too")
    parser.add_argument("--mfu", action="store_true",
                        help="also report MFU against a measured matmul peak")
    parser.add_argument("--matmul", type=int, default=8192, help="peak matmul size")
    parser.add_argument("--runs", default=None,
                        help="comma-separated job names to time (default: all); a "
                             "slow-compiling row can then be measured on its own")
    return parser.parse_args()


def selected(order: tuple[str, ...], runs: str | None) -> tuple[str, ...]:
    """The jobs of `order` named by `--runs` (all of them without it)."""
    if runs is None:
        return order
    names = tuple(r.strip() for r in runs.split(","))
    unknown = sorted(set(names) - set(order))
    if unknown:
        raise SystemExit(f"--runs: unknown job(s) {unknown}; choose from {list(order)}")
    return tuple(n for n in order if n in names)


def slowdowns(runs: dict[str, dict[str, float]], job: str, bases: tuple[str, ...]
              ) -> dict[str, float]:
    """Step time of `job` over each base's (from the same run)."""
    out = {}
    for base in bases:
        if job in runs and base in runs:
            out[f"step_time_{job}_over_{base}".replace(" ", "_")] = (
                runs[base]["img_per_s"] / runs[job]["img_per_s"])
            print(f"step time {job} / {base}: {out[list(out)[-1]]:.3f}")
    return out
