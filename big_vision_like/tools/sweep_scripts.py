"""The scripts of a sweep for other machines: commands.sh (one
`python -m big_vision_like.train ...` line per run, each value shell-quoted)
and sweep.sbatch (a Slurm array whose task i starts run i of sweep.json)."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import TYPE_CHECKING

from big_vision_like import filesystem as fs

if TYPE_CHECKING:
    from big_vision_like.tools.sweep import Run


def command_line(python: str, config_file: str, base_args: Sequence[str], run: Run) -> str:
    return shlex.join([python, "-m", "big_vision_like.train", "--config", config_file,
                       "--workdir", run.workdir, *base_args, *run.args])


def write_commands(path: str, python: str, config_file: str, base_args: Sequence[str],
                   runs: Sequence[Run]) -> None:
    """One line per run and nothing else (values with control characters are refused
    when the sweep is planned); `bash commands.sh` from the directory the sweep was
    made in runs all."""
    with fs.open(path, "w") as f:
        for run in runs:
            f.write(command_line(python, config_file, base_args, run) + "\n")


def write_sbatch(path: str, python: str, sweep_dir: str, num_runs: int, cwd: str,
                 extra: Sequence[str] = ()) -> None:
    """Task i starts run i through `sweep --run_index i`, which reads the run's
    arguments from sweep.json: no user value is parsed by a shell on the way."""
    logs = fs.join(fs.dirname(fs.absolute(path)), "logs")
    fs.makedirs(logs)
    lines = ["#!/bin/bash",
             f"#SBATCH --job-name={shlex.quote(fs.basename(fs.dirname(path)))}",
             f"#SBATCH --array=0-{num_runs - 1}",
             f"#SBATCH --output={logs}/%A_%a.out",
             "#SBATCH --open-mode=append",
             "#SBATCH --requeue",
             *(f"#SBATCH {e}" for e in extra),
             "# Task i trains run i of sweep.json. The trainer resumes from the run's",
             "# last checkpoint, so a requeued or resubmitted task carries on where it",
             "# stopped, and a finished run only reloads its last checkpoint.",
             "set -euo pipefail",
             f"cd {shlex.quote(cwd)}",
             f"exec {shlex.quote(python)} -m big_vision_like.tools.sweep "
             f'--workdir {shlex.quote(sweep_dir)} --run_index "$SLURM_ARRAY_TASK_ID"']
    with fs.open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
