"""scripts/slurm/train.sbatch, checked without a cluster: its #SBATCH lines,
and the train commands it launches (srun and scontrol replaced by stubs that
record what they are asked), parsed by train.py's own flag parser."""

import json
import os
import pathlib
import re
import stat
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "slurm" / "train.sbatch"

# srun: records its argv, then runs the command as SLURM_NTASKS tasks would,
# each with its own SLURM_PROCID / SLURM_LOCALID / SLURM_NODEID.
FAKE_SRUN = r"""#!/bin/bash
printf '%s\n' "$@" > "$STUB_LOG/srun.argv"
while [[ $1 == --* ]]; do shift; done
per_node=$SLURM_NTASKS_PER_NODE
for ((i = 0; i < SLURM_NTASKS; i++)); do
  SLURM_PROCID=$i SLURM_LOCALID=$((i % per_node)) SLURM_NODEID=$((i / per_node)) \
    SLURM_STEP_NODELIST=$SLURM_JOB_NODELIST "$@" || exit $?
done
"""
FAKE_SCONTROL = r"""#!/bin/bash
[[ "$1 $2 $3" == "show hostnames gpu[017-018]" ]] || { echo "unexpected: $*" >&2; exit 1; }
printf 'gpu017\n'
sleep 0.2  # a reader that stops after one line would end this with SIGPIPE
printf 'gpu018\n'
"""
# python: each task's argv as one JSON line.
FAKE_PYTHON = r"""#!/usr/bin/env python3
import json, os, sys
with open(os.path.join(os.environ["STUB_LOG"], "python.jsonl"), "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\n")
"""


def _stub(directory: pathlib.Path, name: str, text: str) -> None:
    path = directory / name
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_sbatch_script_is_valid_bash_with_the_scheduler_settings():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    sbatch = dict(re.findall(r"^#SBATCH --([\w-]+)(?:=(\S+))?", SCRIPT.read_text(), re.M))
    assert sbatch["nodes"] and sbatch["ntasks-per-node"] and "requeue" in sbatch
    # One process per GPU, each seeing all of its node's GPUs: JAX gives task
    # SLURM_LOCALID the GPU of that number.
    assert sbatch["ntasks-per-node"] == sbatch["gpus-per-node"]
    assert "gpus-per-task" not in sbatch


def _run_script(tmp_path, restart_count=0):
    bin_dir, log = tmp_path / "bin", tmp_path / "log"
    bin_dir.mkdir()
    log.mkdir()
    _stub(bin_dir, "srun", FAKE_SRUN)
    _stub(bin_dir, "scontrol", FAKE_SCONTROL)
    _stub(bin_dir, "python", FAKE_PYTHON)
    workdir = tmp_path / "workdir"
    workdir.mkdir()
    (workdir / "run.lock").write_text('{"pid": 1, "host": "gpu099"}\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "BVL_"))}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env['PATH']}", STUB_LOG=str(log),
               SLURM_JOB_ID="4242", SLURM_JOB_NODELIST="gpu[017-018]", SLURM_NTASKS="4",
               SLURM_NTASKS_PER_NODE="2", SLURM_JOB_NUM_NODES="2",
               SLURM_RESTART_COUNT=str(restart_count))
    result = subprocess.run(
        ["bash", str(SCRIPT), "configs/demo.py", str(workdir),
         "--config.total_steps=7", "--config.profile.start_step=3"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    argvs = [json.loads(line) for line in (log / "python.jsonl").read_text().splitlines()]
    return argvs, (log / "srun.argv").read_text().split("\n"), workdir


def test_sbatch_script_launches_one_train_process_per_task(tmp_path):
    argvs, srun_argv, workdir = _run_script(tmp_path)
    assert "--kill-on-bad-exit=1" in srun_argv
    port = 61440 + 4242 % 4096  # JAX's own port for a Slurm job id
    assert len(argvs) == 4
    for i, argv in enumerate(argvs):
        assert argv == [
            "-m", "big_vision_like.train", "--config=configs/demo.py",
            f"--workdir={workdir}", f"--coordinator_address=gpu017:{port}",
            "--num_processes=4", f"--process_id={i}",
            "--config.total_steps=7", "--config.profile.start_step=3"]
    assert (workdir / "run.lock").exists()  # a first run leaves a lock alone


def test_a_requeued_job_drops_the_lock_of_its_killed_predecessor(tmp_path):
    _, _, workdir = _run_script(tmp_path, restart_count=1)
    assert not (workdir / "run.lock").exists()


def test_train_py_parses_the_flags_the_script_passes(tmp_path):
    """train.py's own parser reads every flag (a renamed one fails here), the
    config overrides included; --print_config stops before any process joins."""
    argvs, _, _ = _run_script(tmp_path)
    argv = argvs[3]
    assert argv[:2] == ["-m", "big_vision_like.train"]
    out = subprocess.run([sys.executable, *argv, "--print_config"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    config = json.loads(out.stdout)
    assert config["total_steps"] == 7 and config["profile"]["start_step"] == 3
    bad = [a.replace("--num_processes", "--num_procs") for a in argv]
    out = subprocess.run([sys.executable, *bad, "--print_config"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "num_procs" in out.stderr
