"""Faults of a training run: checkpoints that cannot be written. Anything
that might hang runs in a subprocess with a timeout."""

import errno
import json
import os
import subprocess
import sys
import time

import jax.numpy as jnp
import pytest

from big_vision_like import checkpointing

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}
EVAL_PP = ("decode|central_crop(32)|value_range(-1, 1)|multi_hot(fill_ancestors=False)"
           "|keep('image', 'labels')")


def train_args(data_dir: str, workdir, **overrides) -> list[str]:
    """Command-line arguments of a short run on the tiny dataset."""
    config = {"input.data.name": "synthetic_jft/tiny", "input.data.data_dir": data_dir,
              "input.image_shape": "(32, 32, 3)", "batch_size": 16,
              "input.shuffle_buffer": 100, "total_steps": 30, "ckpt_steps": 4,
              "log_steps": 1, "evals.fasteval.every_steps": 1000,
              "evals.fasteval_loss.every_steps": 1000, "evals.fasteval.pp": EVAL_PP,
              "evals.fasteval_loss.pp": EVAL_PP, **overrides}
    return ["--config", "configs/demo.py", "--workdir", str(workdir),
            *(f"--config.{k}={v}" for k, v in config.items())]


def logged_steps(workdir) -> list[int]:
    path = os.path.join(workdir, "metrics.jsonl")
    return [json.loads(line)["step"] for line in open(path)] if os.path.exists(path) else []


# --- 2. Checkpoints that cannot be written ------------------------------------------

PERMISSION = [PermissionError(errno.EACCES, "Permission denied", "/ckpt/2.orbax-tmp"),
              OSError(errno.EROFS, "Read-only file system", "/ckpt/2.orbax-tmp"),
              ValueError("PERMISSION_DENIED: Error writing local file: Permission denied "
                         "[os_error_code='13']")]
NO_SPACE = [OSError(errno.ENOSPC, "No space left on device"),
            ValueError("RESOURCE_EXHAUSTED: Error writing \"w/0\" in OCDBT database: Failed "
                       "to write 328942 bytes to file 8: No space left on device "
                       "[os_error_code='28']")]


@pytest.mark.parametrize("error", PERMISSION + NO_SPACE, ids=lambda e: str(e)[:24])
@pytest.mark.parametrize("earlier", [False, True], ids=["first", "after_one"])
@pytest.mark.parametrize("surfaces_at", ["next_save", "check", "wait"])
def test_failed_background_save_is_reported_accurately(tmp_path, monkeypatch, error,
                                                       earlier, surfaces_at):
    """Formerly the error named the next save's step, advised freeing disk
    space for a permission problem and said earlier checkpoints were
    untouched when there were none."""
    state = {"w": jnp.arange(4.0)}
    ckpt = checkpointing.Checkpointer(str(tmp_path), asynchronous=False)
    if earlier:
        ckpt.save(1, state)
        ckpt.wait()
    issued = []

    def save_in_background(step, **kwargs):  # issued; fails while being written
        issued.append(step)
        return True

    def fail_if_issued():
        if issued:
            raise error

    monkeypatch.setattr(ckpt._manager, "save", save_in_background)
    monkeypatch.setattr(ckpt._manager, "wait_until_finished", fail_if_issued)
    monkeypatch.setattr(ckpt._manager, "check_for_errors", fail_if_issued)
    ckpt.save(2, state)
    with pytest.raises(checkpointing.CheckpointError) as raised:
        {"next_save": lambda: ckpt.save(3, state), "check": ckpt.check,
         "wait": ckpt.wait}[surfaces_at]()
    message = str(raised.value)
    assert message.startswith("checkpoint 2 could not be written")
    if error in PERMISSION:
        assert "not writable" in message and "free disk space" not in message
    else:
        assert "full" in message and "not writable" not in message
    if earlier:
        assert "Checkpoint 1, the latest complete one, is untouched" in message
    else:
        assert "No earlier checkpoint exists" in message and "untouched" not in message
    monkeypatch.undo()
    ckpt.close()


# Makes orbax's temporary checkpoint folders fail from a given step on, as a
# read-only or full file system does (works as root too, where chmod does not).
_FAILING_WRITER = """
import errno, os, re, runpy, sys
code, first_bad = getattr(errno, sys.argv[1]), int(sys.argv[2])
for name in ("makedirs", "mkdir"):
    def failing(path, *args, _real=getattr(os, name), **kwargs):
        m = re.search(r"/(\\d+)\\.orbax-checkpoint-tmp$", os.fspath(path))
        if m and int(m.group(1)) >= first_bad:
            raise OSError(code, os.strerror(code), os.fspath(path))
        return _real(path, *args, **kwargs)
    setattr(os, name, failing)
sys.argv = ["big_vision_like.train", *sys.argv[3:]]
runpy.run_module("big_vision_like.train", run_name="__main__", alter_sys=True)
"""


def _tmpfs(path, size: str) -> bool:
    """Mounts a tiny tmpfs at `path` if this machine lets us (root, not in a
    locked-down container)."""
    os.makedirs(path, exist_ok=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                               str(path)], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _stderr_tail(out) -> list[str]:
    return [line for line in out.stderr.strip().splitlines() if line.strip()][-1:]


@pytest.mark.parametrize("fault", ["read_only", "disk_full"])
def test_run_that_cannot_checkpoint_exits_promptly_with_one_message(tiny_builder, tmp_path,
                                                                    fault):
    """Formerly: an error printed, then the process never exited (orbax
    threads waited for the failed save), under ~1,300 lines of tracebacks."""
    data_dir = tiny_builder.data_dir.split("/synthetic_jft")[0]
    workdir = tmp_path / "run"
    mounted = fault == "disk_full" and _tmpfs(workdir / "checkpoints", "256k")
    try:
        if mounted:  # a real full disk: the first checkpoint does not fit
            command = [sys.executable, "-m", "big_vision_like.train"]
            first_bad = 4
        else:  # read-only from checkpoint 8 on (4 is written), or ENOSPC from 4
            first_bad = 8 if fault == "read_only" else 4
            code = "EACCES" if fault == "read_only" else "ENOSPC"
            command = [sys.executable, "-c", _FAILING_WRITER, code, str(first_bad)]
        start = time.perf_counter()
        out = subprocess.run([*command, *train_args(data_dir, workdir)], cwd=REPO, env=ENV,
                             capture_output=True, text=True, timeout=400)
        took = time.perf_counter() - start
    finally:
        if mounted:
            subprocess.run(["umount", str(workdir / "checkpoints")], timeout=60)
    assert out.returncode == 1, out.stderr[-3000:]
    (last,) = _stderr_tail(out)
    assert last.startswith(f"error: checkpoint {first_bad} could not be written"), last
    if fault == "read_only":
        assert "not writable" in last
        assert "Checkpoint 4, the latest complete one, is untouched" in last
    else:
        assert "full" in last and "No earlier checkpoint exists" in last
    # It stopped within a step or two of the failure, not at the next save.
    assert max(logged_steps(workdir)) <= first_bad + 2
    assert len(out.stderr.splitlines()) < 60, out.stderr[-3000:]
    print(f"{fault}: exited after {took:.0f} s (mounted tmpfs: {mounted})")
