"""Checks every checkpoint of a workdir against the checksums saved with it.

    python -m big_vision_like.tools.verify_checkpoints <workdir> [<workdir> ...]

One line a step: intact (every array matches its checksum; older checkpoints
saved without checksums are read back whole and finite) or DAMAGED with the
first array that differs. Works on local and remote workdirs (gs://, ...).
Exits 1 when a step is damaged, 2 when a workdir has no checkpoints. A
training run does the same check before resuming and moves a damaged step
aside (`<step>.unreadable`), resuming from the newest intact one.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from absl import logging

from big_vision_like import filesystem as fs
from big_vision_like.checkpoint_reading import verify_step


def step_folders(workdir: str) -> list[int]:
    root = fs.join(workdir, "checkpoints")
    if not fs.isdir(root):
        return []
    return sorted(int(n) for n in fs.listdir(root) if n.isdigit())


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m big_vision_like.tools.verify_checkpoints",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("workdirs", nargs="+", help="Training runs' workdirs.")
    args = p.parse_args(argv)
    logging.set_verbosity(logging.ERROR)  # orbax warns of metadata it does not need
    damaged = empty = False
    for workdir in args.workdirs:
        steps = step_folders(workdir)
        if not steps:
            print(f"{workdir}: no checkpoints (looked in {fs.join(workdir, 'checkpoints')})")
            empty = True
        for step in steps:
            ok, line = verify_step(fs.join(workdir, "checkpoints", str(step)))
            print(f"{workdir} step {step}: {line}", flush=True)
            damaged |= not ok
    return 1 if damaged else 2 if empty else 0

if __name__ == "__main__":
    sys.exit(main())
