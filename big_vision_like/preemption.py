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

Outside the step loop (`agreed_now`, the same allgather, called by every
process at the same points): at the end of each start-up phase a stop exits
before the first step with nothing to save (`check_before_start`), and
between evaluation batches it stops the evaluation (`raise_if_agreed`, the
trainer saves the step). SIGINT (Ctrl-C) is watched like SIGTERM and gives
exit code 130.

Limits: with JAX's service a SIGTERM is only known at a training step (the
service has no call for "is a notice pending"), so start-up and evaluations
run on to the next step; a SIGINT with several processes under the service
is agreed outside the loop only. A signal before the watch starts (imports)
ends the process as usual. Evaluations due at the stop step are skipped (the
grace time is short); final evaluations are owed to the rerun as after any
interruption.
"""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType
from typing import Any

import jax
import numpy as np
from absl import logging

# 128 + SIGTERM: what a shell reports for a process SIGTERM ended, so
# wrappers that already requeue a job "killed by SIGTERM" requeue this one;
# distinct from 1, which the trainer uses for errors a rerun would repeat.
EXIT_CODE = 128 + signal.SIGTERM
# 128 + SIGINT: a Ctrl-C takes the same path (checkpoint, then exit) with its own code.
INTERRUPT_EXIT_CODE = 128 + signal.SIGINT
_WATCHED = (signal.SIGTERM, signal.SIGINT)


class Preempted(Exception):
    """The run saved a checkpoint at `step` after a preemption notice (SIGTERM) or a
    Ctrl-C (SIGINT) and stops; rerunning the same command resumes from it. `step`
    is None for a stop before the first step (nothing to save); `exit_code` is what
    the command exits with (143 for SIGTERM, 130 for SIGINT)."""

    def __init__(self, step: int | None, exit_code: int = EXIT_CODE):
        what = (f"checkpoint {step} saved; rerun the same command to resume from it"
                if step is not None else "stopped before the first step, nothing to save; "
                "rerun the same command to start")
        super().__init__(f"{'interrupted' if exit_code == INTERRUPT_EXIT_CODE else 'preempted'}"
                         f": {what}.")
        self.step = step
        self.exit_code = exit_code


class StopRequested(Exception):
    """Raised between evaluation batches when every process agreed to stop."""


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
        self.signals = 0  # SIGTERMs and SIGINTs the Python handlers received
        self.first_signal_at: float | None = None
        self.first_signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> PreemptionWatch:
        if threading.current_thread() is not threading.main_thread():
            # Python only lets the main thread install handlers.
            logging.warning("preemption: not on the main thread, so no SIGTERM handler; "
                            "a SIGTERM ends the run without a checkpoint.")
            return self
        jax_service = jax.distributed.is_initialized() and _jax_service_available()
        # JAX's service catches SIGTERM itself; a Python handler would replace its.
        for sig in (signal.SIGINT,) if jax_service else _WATCHED:
            if sig == signal.SIGINT and signal.getsignal(sig) == signal.SIG_IGN:
                continue  # started with Ctrl-C ignored (nohup, a background job)
            self._previous[sig] = signal.signal(sig, self._on_signal)
        self.mode = "jax" if jax_service else "signal"
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # After a preemption the handlers stay: more signals while the process
        # winds down are counted, not turned into a "killed" exit status.
        if not isinstance(exc, Preempted):
            for sig, previous in self._previous.items():
                signal.signal(sig, previous)
            self._previous = {}
            self.mode = "none" if self.mode == "signal" else self.mode

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Runs on the main thread between bytecodes, possibly in the middle of
        # a save or of logging: only record, so nothing is interrupted.
        self.signals += 1
        if self.first_signal_at is None:
            self.first_signal_at = time.time()
            self.first_signal = signum

    @property
    def exit_code(self) -> int:
        return INTERRUPT_EXIT_CODE if self.first_signal == signal.SIGINT else EXIT_CODE

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

            # A SIGINT is agreed on outside the loop only (agreed_now): an allgather
            # every step would cost what the service saves.
            return (multihost_utils.reached_preemption_sync_point(step)
                    or (jax.process_count() == 1 and self.signals > 0))
        if jax.process_count() == 1:
            return self.signals > 0
        if step % self.every:
            return False
        return self.agreed_now()

    def agreed_now(self) -> bool:
        """Whether any process has a signal recorded: outside the step loop (start-up,
        between evaluation batches), where every process calls it at the same points
        in the same order. One allgather with several processes. JAX's service
        (mode "jax") tells a SIGTERM only at a training step: there, an evaluation or
        start-up runs on to the next step (SIGINT is seen, it has a Python handler)."""
        if jax.process_count() == 1:
            return self.signals > 0
        from jax.experimental import multihost_utils

        flags = multihost_utils.process_allgather(np.int32(self.signals > 0))
        return bool(np.asarray(flags).any())

    def raise_if_agreed(self) -> None:
        """StopRequested if `agreed_now` (called between evaluation batches)."""
        if self.agreed_now():
            logging.warning("%s during an evaluation: stopping it.", self._signal_name())
            raise StopRequested()

    def check_before_start(self, where: str) -> None:
        """Raises Preempted(None) if a stop was requested during start-up (`where`
        names the phase just finished): nothing is saved yet, so the run just ends."""
        if self.agreed_now():
            logging.warning("%s during start-up (%s): stopping before the first step.",
                            self._signal_name(), where)
            raise Preempted(None, self.exit_code)

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
        logging.warning("stopped: checkpoint %d saved in %s; rerun the same command to "
                        "resume from it.", step, ckpt.directory)
        return Preempted(step, self.exit_code)

    def _signal_name(self) -> str:
        return "SIGINT (Ctrl-C)" if self.first_signal == signal.SIGINT else "SIGTERM"

    def describe(self, step: int) -> str:
        """A line for the log on stopping at `step`."""
        if self.mode == "jax":
            return (f"preemption notice (SIGTERM to one of the {jax.process_count()} "
                    f"processes, agreed by JAX's preemption service): stopping at step {step}")
        here = (f"{self._signal_name()} received {time.time() - self.first_signal_at:.1f} s "
                "ago" if self.first_signal_at is not None else "a signal to another process")
        return f"stop requested ({here}): stopping at step {step}"

    def late_signals(self) -> int:
        """Signals beyond the first (e.g. sent again while saving), ignored."""
        return max(self.signals - 1, 0)


def _jax_service_available() -> bool:
    """Whether JAX's preemption sync manager runs: `jax.distributed.initialize`
    starts it when jax_enable_preemption_service is on (a public flag; JAX has no
    public call asking whether the manager exists)."""
    return bool(jax.config.jax_enable_preemption_service)
