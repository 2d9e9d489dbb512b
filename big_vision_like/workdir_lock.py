"""One run per workdir: a lock file naming the process that holds it.

    with hold_workdir(workdir):
        ...train...

Two runs writing one workdir interleave their metrics and fight over
checkpoints. `hold_workdir` creates `<workdir>/run.lock` with the holder's pid and
host, refuses a second run while the holder lives, and removes the file on
exit. A lock left by a process that died (SIGKILL, power loss) is taken
over with a warning when its pid is no longer running on this host; a lock
from another host cannot be checked from here and is refused, with the
path to delete if that run is known to be over.

On one host an `flock` on the file makes taking the lock atomic; the pid
and host in the file make the refusal say who holds it, and keep stale
locks detectable where `flock` does nothing (some network file systems).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator

from absl import logging

from big_vision_like import filesystem as fs

LOCK_NAME = "run.lock"


class WorkdirLockedError(RuntimeError):
    """Another live run holds the workdir."""


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def _read_holder(fd: int) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 4096).decode(errors="replace").strip()
    try:
        holder = json.loads(text) if text else {}
    except json.JSONDecodeError:
        holder = {}
    return holder if isinstance(holder, dict) else {}


def _describe(holder: dict) -> str:
    return (f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')} "
            f"(since {holder.get('started', '?')})")


def _open_locked(path: str) -> tuple[int, bool]:
    """(fd of the lock file, whether this process got the flock). The fd
    refers to the file now at `path`, not one a releasing run unlinked."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return fd, False
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd, True
        os.close(fd)  # unlinked by its holder meanwhile: try the new file


@contextlib.contextmanager
def hold_workdir(workdir: str, enabled: bool = True) -> Iterator[None]:
    """Holds `workdir` for this process; raises WorkdirLockedError if a live
    run holds it. `enabled=False` (processes other than 0 of a multi-process
    run) does nothing."""
    if not enabled:
        yield
        return
    if fs.is_url(workdir):
        logging.warning("%s: object stores have no file locks, so nothing stops a second "
                        "run from using this workdir; the scheduler must start one job "
                        "per workdir.", workdir)
        fs.makedirs(workdir)
        yield
        return
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(os.path.abspath(workdir), LOCK_NAME)
    fd, got_flock = _open_locked(path)
    try:
        holder = _read_holder(fd)
        if not got_flock:
            raise WorkdirLockedError(
                f"{workdir} is in use by another run: {_describe(holder)}. Wait for "
                "it to finish or stop it, or give this run another --workdir.")
        if holder:
            pid, host = holder.get("pid"), holder.get("host")
            if host != socket.gethostname():
                raise WorkdirLockedError(
                    f"{workdir} is locked by a run on another host: {_describe(holder)}; "
                    f"its state cannot be checked from here. If that run is over, "
                    f"delete {path} and start again.")
            if isinstance(pid, int) and pid != os.getpid() and _pid_running(pid):
                raise WorkdirLockedError(
                    f"{workdir} is in use by another run: {_describe(holder)}. Wait "
                    "for it to finish or stop it, or give this run another --workdir.")
            logging.warning("%s: taking over the lock of a run that is no longer "
                            "running (%s)", workdir, _describe(holder))
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, (json.dumps(me) + "\n").encode())
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        raise
    try:
        yield
    finally:
        try:
            if _read_holder(fd).get("pid") == os.getpid():
                os.unlink(path)  # while still flocked: no one can take it half-way
        except FileNotFoundError:
            pass
        finally:
            os.close(fd)
