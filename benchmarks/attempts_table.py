"""The table of benchmarks/gpu_speed_attempts.sh: img/s, ms/step and MFU of each
attempt, and its ratio to the unchanged step measured in the same call.

    python -m benchmarks.attempts_table OUT_DIR
"""

from __future__ import annotations

import argparse
import glob
import json
import os

BASE = "base"


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
                rows[name] = dict(result["runs"][0], device=result["device"],
                                  xla_flags=result.get("xla_flags", "").strip())
    return rows


def table(rows: dict[str, dict | None]) -> str:
    base = rows.get(BASE)
    lines = ["| attempt | XLA flags | img/s | ms/step | MFU | vs base |",
             "|---|---|---|---|---|---|"]
    for name, row in rows.items():
        if row is None:
            lines.append(f"| {name} | | failed (see attempt_{name}.log) | | | |")
            continue
        ratio = row["img_per_s"] / base["img_per_s"] if base else float("nan")
        lines.append(f"| {name} | `{row['xla_flags'] or '-'}` | {row['img_per_s']:,.0f} | "
                     f"{row['step_ms']:.1f} | {row['mfu_vs_measured_peak']:.1%} | "
                     f"{ratio:.3f} |")
    device = next((r["device"] for r in rows.values() if r), "?")
    return f"device: {device}\n\n" + "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory")
    print(table(read_attempts(parser.parse_args().directory)), end="")


if __name__ == "__main__":
    main()
