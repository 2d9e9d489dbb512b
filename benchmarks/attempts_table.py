"""The table of benchmarks/gpu_speed_attempts.sh: img/s, ms/step and MFU of each
attempt, and its ratio to the unchanged step of the same model measured in
the same call; and which single changes won, for the script's combined run.

    python -m benchmarks.attempts_table OUT_DIR
    python -m benchmarks.attempts_table OUT_DIR --winners   # flags of the winners

Attempts named `jft_*` are the ResNet-101 + 18,291-way head step and compare
with `jft_base`; the others compare with `base`. An attempt timed without a
FLOP count gets its model's MFU scaled by its speed (the same model FLOPs).
"""

from __future__ import annotations

import argparse
import glob
import json
import os

BASE = "base"
# Candidate changes and the train_step_throughput flags that make them, in the
# order the script tries them; a winner is at least WIN faster than base.
SINGLE = {"maxpool_gather": "--max_pool_gather_grad"}
WIN = 1.01
# Model options a result records (a row lists those that are on).
OPTIONS = ("stem_space_to_depth", "max_pool_gather_grad")
AUTOTUNE_CACHE_FLAG = "--xla_gpu_per_fusion_autotune_cache_dir"


def attempt_flags(xla_flags: str) -> str:
    """The XLA flags that make an attempt: the script's autotuning cache, on for
    every attempt alike, is left out."""
    return " ".join(f for f in xla_flags.split() if not f.startswith(AUTOTUNE_CACHE_FLAG))


def read_attempts(directory: str) -> dict[str, dict | None]:
    """attempt name -> its first run's row (None: the process wrote no result), in
    the order the attempts ran."""
    rows: dict[str, dict | None] = {}
    for log in sorted(glob.glob(os.path.join(directory, "attempt_*.log")), key=os.path.getmtime):
        name = os.path.basename(log)[len("attempt_"):-len(".log")]
        path = os.path.join(directory, f"attempt_{name}.json")
        rows[name] = None
        if os.path.exists(path):
            with open(path) as f:
                result = json.load(f)
            if result["runs"]:
                options = [k for k in OPTIONS if result.get(k)]
                rows[name] = dict(result["runs"][0], device=result["device"],
                                  batch_size=result.get("batch_size"), options=options,
                                  xla_flags=attempt_flags(result.get("xla_flags", "")))
    return rows


def base_of(name: str) -> str:
    return "jft_base" if name.startswith("jft") else BASE


def ratio(rows: dict[str, dict | None], name: str) -> float:
    base, row = rows.get(base_of(name)), rows.get(name)
    return row["img_per_s"] / base["img_per_s"] if base and row else float("nan")


def winners(rows: dict[str, dict | None]) -> list[str]:
    """train_step_throughput flags of the single changes at least WIN faster."""
    return [flag for name, flag in SINGLE.items() if ratio(rows, name) >= WIN]


def table(rows: dict[str, dict | None]) -> str:
    lines = ["| attempt | batch | model options | XLA flags | img/s | ms/step | MFU | vs base |",
             "|---|---|---|---|---|---|---|---|"]
    for name, row in rows.items():
        if row is None:
            lines.append(f"| {name} | | | | failed (see attempt_{name}.log) | | | |")
            continue
        base = rows.get(base_of(name))
        mfu = row.get("mfu_vs_measured_peak")
        if mfu is None and base and base.get("mfu_vs_measured_peak") is not None:
            mfu = base["mfu_vs_measured_peak"] * ratio(rows, name)
        mfu_cell = "" if mfu is None else f"{mfu:.1%}"
        options = ", ".join(row.get("options") or []) or "-"
        lines.append(f"| {name} | {row.get('batch_size') or ''} | {options} | "
                     f"`{row['xla_flags'] or '-'}` | "
                     f"{row['img_per_s']:,.0f} | {row['step_ms']:.1f} | {mfu_cell} | "
                     f"{ratio(rows, name):.3f} |")
    device = next((r["device"] for r in rows.values() if r), "?")
    return f"device: {device}\n\n" + "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory")
    parser.add_argument("--winners", action="store_true",
                        help="print the flags of the winning single changes, nothing else")
    args = parser.parse_args()
    rows = read_attempts(args.directory)
    print(" ".join(winners(rows)) if args.winners else table(rows), end="\n" if args.winners
          else "")


if __name__ == "__main__":
    main()
