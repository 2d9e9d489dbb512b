"""PyTorch baseline for the train-step benchmark: torchvision ResNets, eager and compiled.

Mirrors `benchmarks.train_step_throughput`'s runs so the JAX numbers have a
yardstick measured on the same card in the same suite run: torchvision's
resnet50 (224 px, softmax 1000) and resnet101 (299 px, 18,291-way head,
per-label sigmoid loss summed over classes and averaged over examples), SGD
with momentum 0.9, bf16 autocast, channels_last, a random batch already on
the device, the same global batch. MFU uses the JAX run's TFLOP/step (XLA's
cost analysis) and its measured matmul peak, read from the JAX JSON, so both
frameworks are divided by the same numbers; without that JSON it falls back
to torch's own FLOP count and matmul peak, and says so.

One invocation times one or more runs and merges them into `--json`, row by
row (a row reads "running" until it finishes, so a run killed by the suite's
timeout still shows up as such). `--table` prints the JAX and torch rows side
by side without touching torch, so it also works where torch is absent.

    python -m benchmarks.torch_baseline --runs r50_eager,r50_compile \
        --jax_json /tmp/train_step_bf16.json --json /tmp/torch_baseline.json
    python -m benchmarks.torch_baseline --table \
        --jax_json /tmp/train_step_bf16.json --json /tmp/torch_baseline.json
    python -m benchmarks.torch_baseline --device cpu --batch_size 4 \
        --image_size 64 --steps 2 --runs r50_eager                  # CPU smoke run
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported lazily: `--table` and the tests must run without it
    import torch

JFT_CLASSES = 18291


@dataclass(frozen=True)
class Model:
    arch: str
    depth: int
    image_size: int
    num_classes: int
    loss: str  # "softmax_xent" or "sigmoid_xent", as in big_vision_like.losses


MODELS = {
    "r50": Model("resnet50", 50, 224, 1000, "softmax_xent"),
    "r101": Model("resnet101", 101, 299, JFT_CLASSES, "sigmoid_xent"),
}
MODES = ("eager", "compile")
RUN_IDS = tuple(f"{m}_{mode}" for m in MODELS for mode in MODES)


def jax_run_name(model: Model, image_size: int) -> str:
    """The name train_step_throughput gives the same run, to find its TFLOP/step."""
    if model.loss == "sigmoid_xent":
        return f"ResNet-{model.depth} {image_size}px sigmoid {model.num_classes} (JFT)"
    return f"ResNet-{model.depth} {image_size}px softmax {model.num_classes}"


def jax_batch_size(run: dict[str, Any]) -> int:
    # The JAX JSON stores throughput and step time but not the batch itself.
    return round(run["img_per_s"] * run["step_ms"] / 1e3)


# ---------------------------------------------------------------- JSON plumbing


def load_json(path: str | None) -> dict[str, Any] | None:
    if not path or not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        print(f"could not read {path}: {e}", flush=True)
        return None


def merge_row(path: str, header: dict[str, Any], row: dict[str, Any]) -> None:
    """Replace (or add) the row with the same id and write the file atomically.

    Atomic, because the suite may kill this process at any moment and a
    half-written file would lose the rows of earlier runs too.
    """
    results = load_json(path) or {"runs": []}
    results.update(header)
    results["runs"] = [r for r in results.get("runs", []) if r.get("id") != row["id"]] + [row]
    results["runs"].sort(key=lambda r: RUN_IDS.index(r["id"]) if r["id"] in RUN_IDS else 99)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(results, f, indent=1)
    os.replace(tmp, path)


# ---------------------------------------------------------------- combined table


def _cell(value: float | None, fmt: str, width: int = 0) -> str:
    text = "-" if value is None or not math.isfinite(value) else format(value, fmt)
    return text.rjust(width)


def combined_rows(jax_results: dict[str, Any] | None,
                  torch_results: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One row per (model, implementation), with img/s relative to torch.compile.

    Rows that failed or never ran are kept with a note instead of numbers, so
    the table always shows what was attempted.
    """
    jax_runs = (jax_results or {}).get("runs", [])
    torch_runs = {r["id"]: r for r in (torch_results or {}).get("runs", [])}
    peak = (jax_results or {}).get("peak_matmul_tflops")
    groups = [("ResNet-50 224px softmax 1000", "r50", "softmax 1000"),
              ("ResNet-101 299px sigmoid 18291", "r101", "sigmoid 18291")]
    rows: list[dict[str, Any]] = []
    for title, key, jax_marker in groups:
        group: list[dict[str, Any]] = []
        jax_run = next((r for r in jax_runs if jax_marker in r.get("name", "")), None)
        if jax_run is not None:
            group.append({"run": "JAX framework step", "img_per_s": jax_run["img_per_s"],
                          "step_ms": jax_run["step_ms"],
                          "tflops_per_step": jax_run["tflops_per_step"],
                          "mfu": jax_run["mfu_vs_measured_peak"]})
            ref = jax_run.get("reference_img_per_s")
            if ref:
                ms = jax_batch_size(jax_run) / ref * 1e3
                group.append({"run": "plain-flax reference", "img_per_s": ref, "step_ms": ms,
                              "tflops_per_step": jax_run["tflops_per_step"],
                              "mfu": (jax_run["tflops_per_step"] / (ms / 1e3) / peak
                                      if peak else None)})
        else:
            group.append({"run": "JAX framework step", "note": "no result"})
        for mode, label in (("eager", "torch eager"), ("compile", "torch.compile")):
            r = torch_runs.get(f"{key}_{mode}")
            if r is None:
                group.append({"run": label, "note": "no result"})
            elif r.get("status") != "ok":
                status = r.get("status", "?")
                if status == "running":  # the row was opened but never closed
                    status = "killed (timeout or crash) before it finished"
                group.append({"run": label, "note": status})
            else:
                group.append({"run": label, "img_per_s": r["img_per_s"],
                              "step_ms": r["step_ms"], "tflops_per_step": r["tflops_per_step"],
                              "mfu": r["mfu"]})
        compiled = next((g.get("img_per_s") for g in group if g["run"] == "torch.compile"),
                        None)
        for g in group:
            g["model"] = title
            g["vs_torch_compile"] = (g["img_per_s"] / compiled
                                     if compiled and g.get("img_per_s") else None)
        rows += group
    return rows


def format_table(jax_results: dict[str, Any] | None,
                 torch_results: dict[str, Any] | None) -> str:
    lines = []
    jax_device = (jax_results or {}).get("device")
    torch_device = (torch_results or {}).get("device")
    lines.append(f"devices: JAX {jax_device or '-'}, torch {torch_device or '-'}; "
                 f"MFU vs the JAX run's measured matmul peak "
                 f"{_cell((jax_results or {}).get('peak_matmul_tflops'), '.1f')} TFLOP/s")
    if jax_device and torch_device and jax_device != torch_device:
        lines.append("WARNING: the two frameworks ran on different devices")
    header = (f"{'model':<32} {'run':<22} {'img/s':>9} {'ms/step':>8} {'TFLOP':>6} "
              f"{'MFU':>6} {'vs compile':>10}")
    lines.append(header)
    lines.append("-" * len(header))
    for r in combined_rows(jax_results, torch_results):
        if "note" in r:
            lines.append(f"{r['model']:<32} {r['run']:<22} {r['note']}")
            continue
        mfu = r.get("mfu")
        mfu_text = "-" if mfu is None or not math.isfinite(mfu) else f"{mfu:.1%}"
        lines.append(f"{r['model']:<32} {r['run']:<22} {_cell(r['img_per_s'], '.1f', 9)} "
                     f"{_cell(r['step_ms'], '.1f', 8)} {_cell(r['tflops_per_step'], '.2f', 6)} "
                     f"{mfu_text:>6} {_cell(r['vs_torch_compile'], '.3f', 10)}")
    return "\n".join(lines)


# ---------------------------------------------------------------- timing (needs torch)


def measured_peak_flops(n: int, device: torch.device) -> float:
    """Best bf16 n^3 matmul rate, as the JAX script measures its peak."""
    import torch

    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    a @ b
    _sync(device)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(10):
            a @ b
        _sync(device)
        best = min(best, (time.perf_counter() - start) / 10)
    return 2 * n ** 3 / best


def _sync(device: torch.device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_step(model: Model, image_size: int, batch_size: int, device: torch.device,
               compile_model: bool, seed: int = 0):
    """Returns step() -> loss (a device tensor) and the module whose FLOPs it runs."""
    import torch
    import torch.nn.functional as F
    import torchvision

    torch.manual_seed(seed)
    net = getattr(torchvision.models, model.arch)(num_classes=model.num_classes)
    net = net.to(device=device, memory_format=torch.channels_last).train()
    images = torch.randn(batch_size, 3, image_size, image_size, device=device)
    images = images.contiguous(memory_format=torch.channels_last)
    classes = torch.randint(0, model.num_classes, (batch_size,), device=device)
    if model.loss == "softmax_xent":
        labels = classes
    else:  # one positive per example, as the JAX run's one-hot labels
        labels = F.one_hot(classes, model.num_classes).float()

    class WithLoss(torch.nn.Module):
        # The loss sits inside the module so torch.compile fuses it with the head.
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            logits = self.net(x).float()  # loss in f32, as the JAX losses do
            if model.loss == "softmax_xent":
                return F.cross_entropy(logits, y)
            return F.binary_cross_entropy_with_logits(logits, y, reduction="sum") / x.shape[0]

    loss_module: torch.nn.Module = WithLoss()
    forward = torch.compile(loss_module) if compile_model else loss_module
    # Fused SGD on the GPU: one kernel for all parameters, as XLA fuses optax's update.
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9,
                          fused=device.type == "cuda")

    def step() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = forward(images, labels)
        loss.backward()
        opt.step()
        return loss.detach()

    return step


def counted_flops(step) -> float:
    """FLOPs of one step by torch's own counter (convolutions and matmuls only)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return float(counter.get_total_flops())


def time_run(run_id: str, args: argparse.Namespace, device: torch.device,
             jax_results: dict[str, Any] | None, torch_peak: float | None) -> dict[str, Any]:
    import torch

    key, mode = run_id.split("_")
    model = MODELS[key]
    size = args.image_size or model.image_size
    row: dict[str, Any] = {"id": run_id, "name": f"torchvision {model.arch} {size}px "
                           f"{model.loss} {model.num_classes} {mode}", "model": model.arch,
                           "mode": mode, "image_size": size, "num_classes": model.num_classes,
                           "batch_size": args.batch_size, "loss": model.loss}
    setup_start = time.perf_counter()
    step = build_step(model, size, args.batch_size, device, compile_model=mode == "compile")
    _sync(device)
    row["setup_s"] = time.perf_counter() - setup_start

    # Warm-up: the compiled run's first step traces and compiles (forward and
    # backward); every run's first steps also let cuDNN benchmark its algorithms.
    start = time.perf_counter()
    loss = step()
    _sync(device)
    row["first_step_s"] = time.perf_counter() - start
    if mode == "compile":
        row["compile_s"] = row["first_step_s"]
        print(f"{run_id}: torch.compile + first step {row['compile_s']:.1f} s", flush=True)
    for _ in range(args.warmup - 1):
        loss = step()
    _sync(device)
    row["warmup_s"] = time.perf_counter() - start
    if mode == "eager" and not args.no_flop_count:
        # After warm-up, so cuDNN's benchmarking is not inside the counted step.
        row["torch_counted_tflops_per_step"] = counted_flops(step) / 1e12
        _sync(device)

    start = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    _sync(device)
    seconds = (time.perf_counter() - start) / args.steps
    row["final_loss"] = float(loss)
    row.update(img_per_s=args.batch_size / seconds, step_ms=seconds * 1e3)
    if device.type == "cuda":
        row["max_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2 ** 30

    # MFU with the JAX run's TFLOP/step and peak where they exist (same card,
    # same model), so the two frameworks' MFUs differ only by their step times.
    jax_run = next((r for r in (jax_results or {}).get("runs", [])
                    if r.get("name") == jax_run_name(model, size)), None)
    if jax_run is not None:
        per_image = jax_run["tflops_per_step"] / jax_batch_size(jax_run)
        row["tflops_per_step"] = per_image * args.batch_size
        row["tflops_source"] = "JAX run (XLA cost analysis)"
    elif "torch_counted_tflops_per_step" in row:
        row["tflops_per_step"] = row["torch_counted_tflops_per_step"]
        row["tflops_source"] = "torch FlopCounterMode (no matching JAX run)"
    else:
        row["tflops_per_step"] = float("nan")
        row["tflops_source"] = "none (no matching JAX run, no count)"
    peak = (jax_results or {}).get("peak_matmul_tflops")
    row["peak_source"] = "JAX run's matmul" if peak else "torch matmul"
    peak = peak or (torch_peak / 1e12 if torch_peak else None)
    row["peak_tflops"] = peak
    row["mfu"] = row["tflops_per_step"] / seconds / peak if peak else float("nan")
    row["status"] = "ok"
    return row


def run_all(args: argparse.Namespace) -> int:
    import torch
    import torchvision

    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    jax_results = load_json(args.jax_json)
    if jax_results is None:
        print(f"no JAX results at {args.jax_json}: MFU uses torch's own FLOP count and peak",
              flush=True)
    header = {"device": (torch.cuda.get_device_name(device) if device.type == "cuda"
                         else "cpu"),
              "torch": torch.__version__, "torchvision": torchvision.__version__,
              "dtype": "bfloat16 autocast", "memory_format": "channels_last",
              "optimizer": "SGD momentum 0.9" + (" fused" if device.type == "cuda" else ""),
              "steps": args.steps, "warmup_steps": args.warmup}
    torch_peak = None
    if args.matmul is None:
        args.matmul = 8192 if device.type == "cuda" else 0
    if args.matmul:
        try:
            torch_peak = measured_peak_flops(args.matmul, device)
            header["torch_peak_matmul_tflops"] = torch_peak / 1e12
            print(f"torch bf16 {args.matmul}^3 matmul: {torch_peak / 1e12:.1f} TFLOP/s",
                  flush=True)
        except Exception as e:  # a peak is a nicety; the runs matter more
            print(f"matmul peak failed: {type(e).__name__}: {str(e)[:300]}", flush=True)

    failures = 0
    for run_id in args.runs.split(","):
        if run_id not in RUN_IDS:
            print(f"unknown run {run_id!r}; known: {', '.join(RUN_IDS)}", flush=True)
            failures += 1
            continue
        if args.json:
            merge_row(args.json, header, {"id": run_id, "status": "running"})
        try:
            row = time_run(run_id, args, device, jax_results, torch_peak)
        except Exception as e:  # compile error, out of memory: record it, go on
            traceback.print_exc()
            message = " ".join(str(e).split())[:300]  # one line, for the table
            row = {"id": run_id, "status": f"failed: {type(e).__name__}: {message}"}
            failures += 1
        print(json.dumps(row), flush=True)
        if row["status"] == "ok":
            print(f"{run_id}: {row['img_per_s']:.1f} img/s, {row['step_ms']:.1f} ms/step, "
                  f"MFU {row['mfu']:.1%}, warm-up {row['warmup_s']:.1f} s"
                  + (f" (compile + first step {row['compile_s']:.1f} s)"
                     if "compile_s" in row else ""), flush=True)
        if args.json:
            merge_row(args.json, header, row)
        # Free this run's model, optimizer state and compiled graphs before the next.
        torch._dynamo.reset()
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)

    # The suite runs one process per run and prints the table once, at its end.
    results = load_json(args.json) if args.json else None
    if results is not None and len(args.runs.split(",")) > 1:
        print(format_table(jax_results, results), flush=True)
    return 1 if failures else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default=",".join(RUN_IDS),
                        help=f"comma-separated, from {', '.join(RUN_IDS)}")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch_size", type=int, default=256, help="global batch")
    parser.add_argument("--image_size", type=int, default=0,
                        help="override every model's image size (0: 224 for R50, 299 for R101)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps")
    parser.add_argument("--warmup", type=int, default=3,
                        help="untimed steps first (the compile happens in the first)")
    parser.add_argument("--matmul", type=int, default=None,
                        help="size of the peak matmul (0: skip; default 8192 on a GPU, "
                             "skipped on the CPU)")
    parser.add_argument("--no_flop_count", action="store_true",
                        help="skip torch's FLOP count of one eager step")
    parser.add_argument("--jax_json", default=None,
                        help="train_step_throughput's JSON: its TFLOP/step and peak give MFU")
    parser.add_argument("--json", default=None, help="merge the rows into this file")
    parser.add_argument("--table", action="store_true",
                        help="only print the JAX + torch table from the two JSONs")
    parser.add_argument("--note", default=None, metavar="STATUS",
                        help="record STATUS (why there is no result) for --runs in --json, "
                             "run nothing")
    args = parser.parse_args()
    if args.batch_size < 1 or args.steps < 1:
        parser.error("--batch_size and --steps must be at least 1")
    if args.warmup < 1:
        parser.error("--warmup must be at least 1 (the first step compiles)")
    if args.table:
        print(format_table(load_json(args.jax_json), load_json(args.json)))
        return
    if args.note is not None:  # the suite's word on runs it skipped or killed
        for run_id in args.runs.split(","):
            if args.json:
                merge_row(args.json, {}, {"id": run_id, "status": args.note})
        return
    raise SystemExit(run_all(args))


if __name__ == "__main__":
    main()
