"""Stopping a run cleanly when the scheduler says it will be evicted.

    with PreemptionWatch() as stop:
        stop.start(first_step - 1)
        for step in ...:
            train_step()
            if stop.should_stop(step):   # every process answers the same
                save a checkpoint at `step`, then raise Preempted(step)

Cluster schedulers announce an eviction with SIGTERM and kill the process
some seconds later (Slurm's `--signal`/preemption `GraceTime`, Kubernetes'
`terminationGracePeriodSeconds`, TPU VM maintenance events). The run then
saves a checkpoint at one step that every process agrees on and exits with
`EXIT_CODE`, which the scheduler reads as "requeue"; the rerun resumes from
that checkpoint exactly.

How the processes agree on the step:

* Under `jax.distributed` with JAX's preemption service (on by default,
  `jax_enable_preemption_service`): the service catches SIGTERM itself (its
  own C++ handler, so no Python handler is installed, which would replace
  it), tells every process through the coordination service, and
  `multihost_utils.reached_preemption_sync_point(step)` is True on every
  process at the same step, one past the furthest step any process had
  reached when the notice spread (the service polls for the signal once a
  second). The call is a host-side lock and compare, free to make every
  step; it works on CPU over gloo as on TPU and GPU.
* Otherwise (one process without `jax.distributed`, or the service turned
  off): a Python SIGTERM handler sets a flag. With one process the flag is
  the answer. With several, the flags are OR-ed across processes with
  `multihost_utils.process_allgather` every `every` steps, the same steps on
  every process, so a SIGTERM to any one process stops all at the same step.

Cost of `should_stop`, 2 CPU processes over gloo on a busy 2-core machine
(tests/multiprocess/preempt_watch.py): 0.05 ms a call with JAX's service,
5 ms with the allgather (its one compilation included); in the trainer the
allgather also waits for the step's computation, hence `every`.

The handlers only record the signal: a second SIGTERM while the checkpoint
is being written is counted and logged, never interrupts the save.

Limits: a SIGTERM before the watch starts (imports, dataset set-up) ends
the process as usual (single process) or is lost to JAX's service, which
has no step to agree on yet (several processes): the run goes on until it
is killed and resumes from its last periodic checkpoint. Evaluations due at
the stop step are skipped (the grace time is short); final evaluations are
owed to the rerun as after any interruption.
"""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType

import jax
import numpy as np
from absl import logging

# 128 + SIGTERM: what a shell reports for a process SIGTERM ended, so
# wrappers that already requeue a job "killed by SIGTERM" requeue this one;
# distinct from 1, which the trainer uses for errors a rerun would repeat.
EXIT_CODE = 128 + signal.SIGTERM


class Preempted(Exception):
    """The run saved a checkpoint at `step` after a preemption notice and stops;
    rerunning the same command resumes from it."""

    def __init__(self, step: int):
        super().__init__(f"preempted: checkpoint {step} saved; rerun the same command "
                         "to resume from it.")
        self.step = step


class PreemptionWatch:
    """Watches for SIGTERM while in its `with` block; see the module docstring.

    every: in the allgather fallback of several processes, agree every this
    many steps (each agreement waits for all processes, so it also waits for
    the step's computation). Ignored elsewhere.
    """

    def __init__(self, every: int = 1):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"preemption_check_every={every!r}: give a step interval >= 1.")
        self.every = every
        self.mode = "none"  # "jax" | "signal" | "none" (no handler could be installed)
        self.signals = 0  # SIGTERMs the Python handler received
        self.first_signal_at: float | None = None
        self._previous = None

    def __enter__(self) -> PreemptionWatch:
        if jax.distributed.is_initialized() and _jax_service_available():
            self.mode = "jax"
            return self
        if threading.current_thread() is not threading.main_thread():
            # Python only lets the main thread install handlers.
            logging.warning("preemption: not on the main thread, so no SIGTERM handler; "
                            "a SIGTERM ends the run without a checkpoint.")
            return self
        self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        self.mode = "signal"
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # After a preemption the handler stays: more SIGTERMs while the process
        # winds down are counted, not turned into a "killed" exit status.
        if self.mode == "signal" and not isinstance(exc, Preempted):
            signal.signal(signal.SIGTERM, self._previous)
            self.mode = "none"

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        # Runs on the main thread between bytecodes, possibly in the middle of
        # a save or of logging: only record, so nothing is interrupted.
        self.signals += 1
        if self.first_signal_at is None:
            self.first_signal_at = time.time()

    def start(self, step: int) -> None:
        """Call once before the loop with the step the run starts from: JAX's
        service computes the stop step from each process's last reported step,
        so a notice arriving before the first training step still finds one."""
        if self.mode == "jax":
            from jax.experimental import multihost_utils

            multihost_utils.reached_preemption_sync_point(step)

    def should_stop(self, step: int) -> bool:
        """Whether to save at `step` and stop; the same answer on every process.
        Call it after every training step, on every process."""
        if self.mode == "jax":
            from jax.experimental import multihost_utils

            return multihost_utils.reached_preemption_sync_point(step)
        if jax.process_count() == 1:
            return self.signals > 0
        if step % self.every:
            return False
        from jax.experimental import multihost_utils

        flags = multihost_utils.process_allgather(np.int32(self.signals > 0))
        return bool(np.asarray(flags).any())

    def stopped(self, step: int, ckpt, writer) -> Preempted:
        """After the checkpoint of `step` was issued: waits until it is committed,
        records the stop in the log and metrics, and returns the exception to raise."""
        logging.warning("%s; writing checkpoint %d.", self.describe(step), step)
        ckpt.wait()  # committed (orbax renames it into place) before the exit code says so
        writer.write(step, {"preempted_at_step": step})
        writer.flush()
        if self.late_signals():
            logging.warning("preemption: %d more SIGTERM(s) while stopping and saving, ignored.",
                            self.late_signals())
        logging.warning("preempted: checkpoint %d saved in %s; rerun the same command to "
                        "resume from it.", step, ckpt.directory)
        return Preempted(step)

    def describe(self, step: int) -> str:
        """A line for the log on stopping at `step`."""
        if self.mode == "jax":
            return (f"preemption notice (SIGTERM to one of the {jax.process_count()} "
                    f"processes, agreed by JAX's preemption service): stopping at step {step}")
        here = (f"SIGTERM received {time.time() - self.first_signal_at:.1f} s ago"
                if self.first_signal_at is not None else "SIGTERM to another process")
        return f"preemption notice ({here}): stopping at step {step}"

    def late_signals(self) -> int:
        """SIGTERMs beyond the first (e.g. sent again while saving), ignored."""
        return max(self.signals - 1, 0)


def _jax_service_available() -> bool:
    """Whether JAX's preemption sync manager runs (jax_enable_preemption_service
    was on when jax.distributed.initialize ran)."""
    try:
        from jax._src import distributed as jax_distributed

        return jax_distributed.global_state.preemption_sync_manager is not None
    except (ImportError, AttributeError):  # another jax: assume the public default
        return bool(jax.config.read("jax_enable_preemption_service"))
