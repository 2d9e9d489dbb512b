"""Where a traced step's device time went: the ops of a JAX profiler trace
(`.xplane.pb`), summed by XLA op and by kind of work.

    python -m benchmarks.trace_top_ops PROFILE_DIR [--steps 3] [--top 25]

On a GPU the device plane's kernels are summed by the XLA op that launched
them (their `hlo_op` stat); on a CPU, the host's XLA op events. Kinds:
convolution (cuDNN), matmul (cuBLAS / Triton GEMM), and the rest of XLA's
fusions split into reductions, copies/transposes and elementwise loops. The
same file opens in TensorBoard's profile tab and in Perfetto for the timeline.
"""

from __future__ import annotations

import argparse
import collections
import glob
import os
import re

from jax.profiler import ProfileData

KINDS = (  # first match wins: the XLA op's name first, then the kernel's; lower case
    ("convolution", r"convolution|conv_general|cudnn-conv|implicit_gemm|fprop|dgrad|wgrad"),
    ("matmul", r"gemm|cublas|cutlass|nvjet|\bdot|triton"),
    ("select-and-scatter", r"select.and.scatter"),
    ("reduction", r"reduce|reduction"),
    ("copy/transpose", r"copy|transpose"),
    ("elementwise fusion", r"fusion|loop"),
)


def latest_xplane(directory: str) -> str:
    paths = glob.glob(os.path.join(directory, "**", "*.xplane.pb"), recursive=True)
    if not paths:
        raise FileNotFoundError(f"No .xplane.pb under {directory}: was a trace written there?")
    return max(paths, key=os.path.getmtime)


def op_times(path: str) -> dict[str, tuple[float, str]]:
    """XLA op -> (device nanoseconds, one kernel name) over the whole trace."""
    data = ProfileData.from_file(path)
    device = [p for p in data.planes if p.name.startswith("/device:")]
    totals: dict[str, float] = collections.defaultdict(float)
    kernels: dict[str, str] = {}
    for plane in device or [p for p in data.planes if p.name.startswith("/host:CPU")]:
        for line in plane.lines:
            if device and not line.name.startswith("Stream"):
                continue  # GPU planes also hold summary lines (XLA Ops, Modules)
            for event in line.events:
                stats = dict(event.stats)
                op = stats.get("hlo_op")
                if op is None:
                    continue  # not XLA's work (runtime, Python)
                totals[str(op)] += event.duration_ns
                kernels.setdefault(str(op), event.name)
    return {op: (ns, kernels[op]) for op, ns in totals.items()}


def kind(op: str, kernel: str) -> str:
    for text in (op.lower(), kernel.lower()):
        for name, pattern in KINDS:
            if re.search(pattern, text):
                return name
    return "other"


def report(path: str, steps: int = 1, top: int = 25) -> str:
    times = op_times(path)
    total = sum(ns for ns, _ in times.values()) or 1.0
    by_kind: dict[str, float] = collections.defaultdict(float)
    for op, (ns, kernel) in times.items():
        by_kind[kind(op, kernel)] += ns
    lines = [f"trace {path}: {total / steps / 1e6:.2f} ms of device ops per step "
             f"({steps} steps)", "", "| kind | ms/step | share |", "|---|---|---|"]
    for name, ns in sorted(by_kind.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {name} | {ns / steps / 1e6:.2f} | {ns / total:.1%} |")
    lines += ["", "| XLA op | kind | ms/step | share | a kernel |", "|---|---|---|---|---|"]
    ranked = sorted(times.items(), key=lambda kv: -kv[1][0])[:top]
    for op, (ns, kernel) in ranked:
        lines.append(f"| {op} | {kind(op, kernel)} | {ns / steps / 1e6:.3f} | {ns / total:.1%} "
                     f"| {kernel[:60]} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory")
    parser.add_argument("--steps", type=int, default=1, help="steps in the trace (per-step ms)")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    print(report(latest_xplane(args.directory), args.steps, args.top))


if __name__ == "__main__":
    main()
