"""Where a traced step's device time went: the ops of a JAX profiler trace
(`.xplane.pb`), summed by kernel and by kind of work.

    python -m benchmarks.trace_top_ops PROFILE_DIR [--steps 3] [--top 25]
    python -m benchmarks.trace_top_ops TRACE.xplane.pb[.gz] --steps 3

On a GPU the device plane's kernels are summed by name; on a CPU, the host's
XLA op events. Kinds: convolution (cuDNN, also the matmul kernels it runs
1x1 convolutions with), matmul (cuBLAS / Triton GEMM), scatter (the max-pool
gradient), and
XLA's other fusions split into reductions (batch-norm statistics and their
gradients), copies/transposes and elementwise loops. The
same file opens in TensorBoard's profile tab and in Perfetto for the timeline.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import os
import re

from jax.profiler import ProfileData

KINDS = (  # first match wins, on the kernel's name, lower case, then on its XLA op's
    ("convolution", r"cudnn|xmma_(fprop|dgrad|wgrad)|implicit_gemm|nhwc.*padding"
                    r"|convolution|conv_general"),
    ("matmul", r"nvjet|gemm|cublas|cutlass|\bdot|triton"),
    ("scatter", r"scatter"),
    ("reduction", r"reduce"),
    ("copy/transpose", r"copy|transpose|memcpy"),
    ("elementwise", r"fusion|loop|memset"),
)


def latest_xplane(directory: str) -> str:
    paths = glob.glob(os.path.join(directory, "**", "*.xplane.pb"), recursive=True)
    if not paths:
        raise FileNotFoundError(f"No .xplane.pb under {directory}: was a trace written there?")
    return max(paths, key=os.path.getmtime)


def op_times(path: str) -> dict[str, tuple[float, str]]:
    """Kernel (GPU) or XLA op (CPU) name -> (device nanoseconds over the whole
    trace, the XLA op that ran it).

    On a GPU the kernels are the unit: XLA names its own kernels after their
    fusions, and CUDA graphs (command buffers) hide which op launched a kernel.
    """
    if path.endswith(".gz"):
        with gzip.open(path, "rb") as f:
            data = ProfileData.from_serialized_xspace(f.read())
    else:
        data = ProfileData.from_file(path)
    device = [p for p in data.planes if p.name.startswith("/device:")]
    totals: dict[str, float] = collections.defaultdict(float)
    ops: dict[str, str] = {}
    for plane in device or [p for p in data.planes if p.name.startswith("/host:CPU")]:
        for line in plane.lines:
            if device and not line.name.startswith("Stream"):
                continue  # GPU planes also hold summary lines (XLA Ops, Modules)
            for event in line.events:
                op = dict(event.stats).get("hlo_op")
                if op is None:
                    continue  # not XLA's work (runtime, Python)
                totals[event.name] += event.duration_ns
                ops.setdefault(event.name, str(op))
    return {name: (ns, ops[name]) for name, ns in totals.items()}


def kind(name: str, op: str = "") -> str:
    """The kind of a kernel; one that a convolution op launched is a convolution
    (cuDNN runs 1x1 convolutions with cuBLAS's matmul kernels)."""
    if re.search(r"cudnn-conv|convolution|conv_general", op.lower()):
        return "convolution"
    for text in (name.lower(), op.lower()):
        for label, pattern in KINDS:
            if re.search(pattern, text):
                return label
    return "other"


def report(path: str, steps: int = 1, top: int = 25) -> str:
    times = op_times(path)
    total = sum(ns for ns, _ in times.values()) or 1.0
    by_kind: dict[str, float] = collections.defaultdict(float)
    for name, (ns, op) in times.items():
        by_kind[kind(name, op)] += ns
    lines = [f"trace {path}: {total / steps / 1e6:.2f} ms of device ops per step "
             f"({steps} steps)", "", "| kind | ms/step | share |", "|---|---|---|"]
    for name, ns in sorted(by_kind.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {name} | {ns / steps / 1e6:.2f} | {ns / total:.1%} |")
    lines += ["", "| kernel | kind | ms/step | share | XLA op |", "|---|---|---|---|---|"]
    ranked = sorted(times.items(), key=lambda kv: -kv[1][0])[:top]
    for name, (ns, op) in ranked:
        lines.append(f"| {name[:70]} | {kind(name, op)} | {ns / steps / 1e6:.3f} | "
                     f"{ns / total:.1%} | {op} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trace", help="a .xplane.pb(.gz), or a folder holding traces (the latest)")
    parser.add_argument("--steps", type=int, default=1, help="steps in the trace (per-step ms)")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    path = latest_xplane(args.trace) if os.path.isdir(args.trace) else args.trace
    print(report(path, args.steps, args.top))


if __name__ == "__main__":
    main()
