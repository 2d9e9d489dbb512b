"""Faults of a training run: checkpoints that cannot be written, two runs on
one workdir. Anything that might hang runs in a subprocess with a timeout."""

import asyncio
import collections
import errno
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time

import jax.numpy as jnp
import pytest

from big_vision_like import checkpointing, quiet_errors, workdir_lock
from big_vision_like.workdir_lock import WorkdirLockedError, hold_workdir
from tests.helpers import tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}
TINY = tiny_config(None)
EVAL_PP = TINY.evals.fasteval.pp


def train_args(data_dir: str, workdir, **overrides) -> list[str]:
    """Command-line arguments of a short run on the tiny dataset."""
    config = {"input.data.name": "synthetic_jft/tiny", "input.data.data_dir": data_dir,
              "input.image_shape": "(32, 32, 3)", "input.pp": TINY.input.pp, "batch_size": 16,
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


def _kinds(lines: list[str]) -> list[tuple[str, int]]:
    """The commonest line beginnings, log prefixes (time, thread) cut: short
    enough to survive a truncated CI log."""
    starts = (re.sub(r"^[IWEF]\d{4} [\d:.]+ +\d+ ", "", line)[:60] for line in lines)
    return collections.Counter(starts).most_common(6)


def _stderr_tail(out) -> list[str]:
    return [line for line in out.stderr.strip().splitlines() if line.strip()][-1:]


@pytest.mark.slow  # a training subprocess per fault
@pytest.mark.parametrize("fault", ["read_only", "disk_full"])
def test_run_that_cannot_checkpoint_exits_promptly_with_one_message(tiny_source, tmp_path,
                                                                    fault):
    """Formerly: an error printed, then the process never exited (orbax
    threads waited for the failed save), under ~1,300 lines of tracebacks."""
    data_dir = tiny_source.builder.data_dir.split("/synthetic_jft")[0]
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
                             capture_output=True, text=True, timeout=200)
        took = time.perf_counter() - start
    finally:
        if mounted:
            subprocess.run(["umount", str(workdir / "checkpoints")], timeout=60)
    assert out.returncode == 1, f"exit status {out.returncode}: {out.stderr[-3000:]}"
    (last,) = _stderr_tail(out)
    assert last.startswith(f"error: checkpoint {first_bad} could not be written"), last
    if fault == "read_only":
        assert "not writable" in last
        assert "Checkpoint 4, the latest complete one, is untouched" in last
    else:
        assert "full" in last and "No earlier checkpoint exists" in last
    # Stopped by the next checkpoint at the latest (`check` sees the failure
    # within ~0.1 s, see below; these tiny steps take ~20 ms each).
    assert max(logged_steps(workdir)) <= first_bad + 4
    noise = [line for line in out.stderr.splitlines() if not line[:1].isspace()]
    assert len(noise) < 40, f"{len(noise)} lines of stderr, most often: {_kinds(noise)}"
    print(f"{fault}: exited after {took:.0f} s (mounted tmpfs: {mounted})")


_POLL = """
import sys, time
import jax.numpy as jnp
from big_vision_like import checkpointing
ckpt = checkpointing.Checkpointer(sys.argv[1])
ckpt.save(1, {"w": jnp.ones(1000)})
ckpt.wait()
ckpt.save(2, {"w": jnp.ones(1000)})
start = time.perf_counter()
try:
    while time.perf_counter() - start < 30:
        ckpt.check()
        time.sleep(0.01)
    print("never raised")
except checkpointing.CheckpointError as e:
    print(f"raised after {time.perf_counter() - start:.2f} s: {e}")
ckpt.close()
"""


@pytest.mark.parametrize("code", ["EACCES", "ENOSPC"])
def test_check_sees_a_failed_background_save_at_once(tmp_path, code):
    """`check` runs every step; a save that fails in the background (here
    its folder cannot be created) must show there, not at the next save."""
    writer = _FAILING_WRITER.replace(
        'runpy.run_module("big_vision_like.train", run_name="__main__", alter_sys=True)',
        "exec(" + repr(_POLL) + ")")
    out = subprocess.run([sys.executable, "-c", writer, code, "2", str(tmp_path)], cwd=REPO,
                         env=ENV, capture_output=True, text=True, timeout=120)
    lines = out.stdout.strip().splitlines()
    assert lines and lines[-1].startswith("raised after"), out.stdout + out.stderr[-2000:]
    assert float(lines[-1].split()[2]) < 5
    assert "checkpoint 2 could not be written" in lines[-1]
    print(code, lines[-1][:40])


class _CallsClosedLoop:
    """Raises in `__del__`, which makes an unraisable exception: `error` if
    given, else asyncio's own "Event loop is closed" (as tensorstore's
    callbacks into a failed save's loop do)."""

    def __init__(self, error: Exception | None = None):
        self.error = error

    def __del__(self):
        if self.error:
            raise self.error
        loop = asyncio.new_event_loop()
        loop.close()
        loop.call_soon_threadsafe(print)


@pytest.mark.parametrize("error", [None, RuntimeError("Event loop is closed"), ValueError("x")],
                         ids=["asyncio_closed_loop", "same_text_elsewhere", "other"])
def test_unraisable_hook_drops_only_asyncio_closed_loop_errors(monkeypatch, error):
    raised, passed_on = [], []
    hook = quiet_errors.drop_closed_loop_errors(passed_on.append)
    monkeypatch.setattr(sys, "unraisablehook", lambda u: (raised.append(u), hook(u)))
    _CallsClosedLoop(error)  # collected at once: its __del__ raises
    monkeypatch.undo()
    assert [str(u.exc_value) for u in raised] == [str(error or "Event loop is closed")]
    assert passed_on == ([] if error is None else raised)


_WRITE_FRAGMENT = "async def write_fragment():\n    raise ValueError('RESOURCE_EXHAUSTED')\n"


@pytest.mark.parametrize("where", ["site-packages/orbax/checkpoint/serialization.py",
                                   "site-packages/other/serialization.py"])
def test_asyncio_reports_of_failed_orbax_writes_are_dropped(where, caplog):
    """Formerly a full disk printed one "Task exception was never retrieved"
    traceback per array write still in flight (CI saw 76 lines of stderr)."""
    namespace = {}
    exec(compile(_WRITE_FRAGMENT, f"/venv/{where}", "exec"), namespace)
    loop = asyncio.new_event_loop()
    task = loop.create_task(namespace["write_fragment"]())
    loop.run_until_complete(asyncio.sleep(0.01))  # the task fails; nobody awaits it
    loop.close()
    # asyncio reports the unretrieved error as the task goes. No gc.collect():
    # a full collection in a process that has run hundreds of tests took 57 s in CI.
    del task
    (record,) = [r for r in caplog.records if r.name == "asyncio"]
    assert record.getMessage().startswith("Task exception was never retrieved")
    assert quiet_errors.quiet_orbax_errors(record) is ("/orbax/" not in where)


def test_orbax_error_records_keep_their_message_without_the_traceback():
    try:
        raise ValueError("RESOURCE_EXHAUSTED")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.LogRecord("absl", logging.ERROR, "/venv/orbax/checkpoint/future.py", 1,
                               "save failed", (), exc_info)
    assert quiet_errors.quiet_orbax_errors(record) and record.exc_info is None
    assert record.getMessage() == "save failed"


# --- 4. Two runs on one workdir ------------------------------------------------------

_HOLD = """
import sys, time
from big_vision_like.workdir_lock import hold_workdir, WorkdirLockedError
try:
    with hold_workdir(sys.argv[1]):
        print("held", flush=True)
        time.sleep(float(sys.argv[2]))
except WorkdirLockedError as e:
    print("refused:", e, flush=True)
"""


def _start_holder(workdir, seconds: float = 120) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(workdir), str(seconds)],
                            cwd=REPO, env=ENV, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


@pytest.mark.slow  # trains in a subprocess; the lock itself is tested below, in process
def test_second_run_on_a_workdir_is_refused_naming_the_holder(tiny_source, tmp_path):
    data_dir = tiny_source.builder.data_dir.split("/synthetic_jft")[0]
    holder = _start_holder(tmp_path)
    try:
        with pytest.raises(WorkdirLockedError, match=f"pid {holder.pid} on host"):
            with hold_workdir(str(tmp_path)):
                pass
        out = subprocess.run([sys.executable, "-m", "big_vision_like.train",
                              *train_args(data_dir, tmp_path)], cwd=REPO, env=ENV,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 1
        (last,) = _stderr_tail(out)
        assert "in use by another run" in last and f"pid {holder.pid}" in last
        assert not os.path.exists(tmp_path / "metrics.jsonl")  # it wrote nothing
    finally:
        holder.kill()
        holder.wait(timeout=60)


def test_concurrent_starts_let_exactly_one_run_in(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", _HOLD, str(tmp_path), "5"], cwd=REPO,
                              env=ENV, stdout=subprocess.PIPE, text=True)
             for _ in range(4)]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert sum(o.startswith("held") for o in outputs) == 1, outputs
    assert sum(o.startswith("refused:") for o in outputs) == 3, outputs


def test_lock_of_a_killed_run_is_taken_over_with_a_warning(tmp_path, caplog):
    holder = _start_holder(tmp_path)
    holder.send_signal(signal.SIGKILL)  # no chance to clean up
    holder.wait(timeout=60)
    lock = tmp_path / workdir_lock.LOCK_NAME
    assert json.loads(lock.read_text())["pid"] == holder.pid
    with caplog.at_level("WARNING"):
        with hold_workdir(str(tmp_path)):
            assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert f"pid {holder.pid}" in caplog.text and "no longer running" in caplog.text
    assert not lock.exists()  # released on exit


@pytest.mark.parametrize("content,taken", [
    ({"pid": 999_999_999, "host": socket.gethostname()}, True),  # dead pid, this host
    ({"pid": 1, "host": "elsewhere.example"}, False),  # cannot check another host
    (None, True),  # an empty file: a run killed while taking the lock
])
def test_stale_lock_files(tmp_path, content, taken):
    lock = tmp_path / workdir_lock.LOCK_NAME
    lock.write_text(json.dumps(content) if content else "")
    if taken:
        with hold_workdir(str(tmp_path)):
            pass
        assert not lock.exists()
    else:
        with pytest.raises(WorkdirLockedError, match=f"elsewhere.example.*delete {lock}"):
            with hold_workdir(str(tmp_path)):
                pass
        assert lock.exists()


def test_lock_is_released_when_the_run_fails_and_other_processes_take_none(tmp_path):
    with pytest.raises(KeyError), hold_workdir(str(tmp_path)):
        raise KeyError("the run failed")
    with hold_workdir(str(tmp_path)):
        with hold_workdir(str(tmp_path), enabled=False):  # process 1 of a job
            pass
    assert not (tmp_path / workdir_lock.LOCK_NAME).exists()


# --- 5. Killed during the final evaluation --------------------------------------------

_STALL_IN_FINAL_EVAL = """
import pathlib, sys, time
from evaluators.map_at_k import MapAtKEvaluator
from big_vision_like import trainer
from tests.helpers import tiny_config

def stall(self, variables):
    pathlib.Path(sys.argv[3]).touch()
    time.sleep(600)
    yield

MapAtKEvaluator.run = stall
trainer.train(tiny_config(sys.argv[1], total_steps=2, ckpt_steps=2), sys.argv[2])
"""


@pytest.mark.slow
def test_sigkill_during_the_final_evaluation_then_rerun_reports_fresh_results(tiny_source,
                                                                              tmp_path):
    from big_vision_like import trainer

    data_dir = tiny_source.builder.data_dir.split("/synthetic_jft")[0]
    workdir, marker = tmp_path / "run", tmp_path / "in_final_eval"
    proc = subprocess.Popen([sys.executable, "-c", _STALL_IN_FINAL_EVAL, data_dir, str(workdir),
                             str(marker)], cwd=REPO, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while not marker.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert marker.exists(), "the run never reached its final evaluation"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    assert "fasteval/map@100" not in trainer.summary(str(workdir))
    trainer.train(tiny_config(data_dir, total_steps=2, ckpt_steps=2), str(workdir))
    final = [r for r in map(json.loads, open(workdir / "metrics.jsonl"))
             if "fasteval/map@100" in r]
    assert [r["step"] for r in final] == [2] and 0 < final[0]["fasteval/map@100"] <= 1
    record = json.load(open(workdir / "final_evals.json"))
    assert record == {"step": 2, "done": ["fasteval", "fasteval_loss"]}
