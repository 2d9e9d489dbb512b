"""Where a training step's time goes: a step-time breakdown logged with the
metrics, and a JAX profiler trace of chosen steps.

StepTimer splits the wall time between two metric rows into the time the
host spent blocked waiting for the next batch and the rest:

    time/step_ms              wall time per step over the steps since the last
                              row, from one step's output being ready on the
                              host (its loss read) to a later one's; evaluations
                              run inside the loop are left out
    time/input_ms             of that, per step, time the training loop sat
                              blocked in next(train_iter): the device
                              prefetcher had no batch ready, so the input
                              pipeline (reading, decoding, pp ops, the
                              host-to-device copy) was the bottleneck
    time/compute_ms           step_ms - input_ms: the device computing the step
                              plus dispatch and the loop's own host work
                              (logging, the blocking part of a checkpoint save)
    time/input_wait_fraction  input_ms / step_ms, in [0, 1]: near 0 the
                              accelerator is the bottleneck, near 1 the host

The loop is asynchronous (a step is dispatched before the one before it has
finished), so only the time blocked on input is measured directly; the
total is taken between points where a step's output is ready, which makes
the rest the device's share. The numbers are process 0's: another host
with slower input shows up on process 0 as compute (its collectives wait).

ProfileWindow traces `config.profile.num_steps` steps from
`config.profile.start_step` with `jax.profiler` into `<workdir>/profile`
(`plugins/profile/<run>/<host>.xplane.pb` for TensorBoard's profile tab, and
`perfetto_trace.json.gz` beside it for ui.perfetto.dev). The steps before the
window are finished before the trace starts and the last traced step's
outputs are ready before it stops, so the trace holds whole steps.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable, Iterator
from typing import Any

import jax
from absl import logging

from big_vision_like import filesystem as fs
from big_vision_like.config import schema


class StepTimer:
    """Input wait and total time of the training loop between metric rows."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter):
        self._clock = clock
        self._input_s = 0.0  # blocked in next() since the last mark
        self._excluded_s = 0.0  # evaluations since the last mark
        self._mark: tuple[int, float] | None = None  # (step, time) its output was ready

    def next(self, iterator: Iterator) -> Any:
        """next(iterator), counting the time it blocks as input wait."""
        t = self._clock()
        try:
            return next(iterator)
        finally:
            self._input_s += self._clock() - t

    @contextlib.contextmanager
    def excluded(self) -> Iterator[None]:
        """Time spent inside (evaluations) counts neither as input nor compute."""
        t = self._clock()
        try:
            yield
        finally:
            self._excluded_s += self._clock() - t

    def mark(self, step: int, report: bool) -> dict[str, float]:
        """Called with `step`'s output ready. The first mark only starts the
        clock (the first step includes compilation); after it, with `report`,
        returns the breakdown of the steps since the last report."""
        now = self._clock()
        if self._mark is None or step <= self._mark[0]:
            self._reset(step, now)
            return {}
        if not report:
            return {}
        prev_step, prev_t = self._mark
        steps = step - prev_step
        wall = max(now - prev_t - self._excluded_s, 1e-9)
        # next() for the step after `step` ran before this mark (the monitor
        # reads a step's loss one step late): clip so one interval's batch
        # wait cannot exceed its wall time.
        input_s = min(self._input_s, wall)
        self._reset(step, now)
        return {"time/step_ms": 1e3 * wall / steps,
                "time/input_ms": 1e3 * input_s / steps,
                "time/compute_ms": 1e3 * (wall - input_s) / steps,
                "time/input_wait_fraction": input_s / wall}

    def _reset(self, step: int, now: float) -> None:
        self._mark = (step, now)
        self._input_s = self._excluded_s = 0.0


class ProfileWindow:
    """A profiler trace of steps [start_step, start_step + num_steps) of a run.

    cfg: `config.profile` (start_step None: off; num_steps; all_processes:
    every process traces into `profile/process_<i>`, else only process 0
    into `profile`; perfetto: also write perfetto_trace.json.gz).
    """

    def __init__(self, cfg: Any, workdir: str, total_steps: int,
                 process_index: int | None = None):
        defaults = schema.base().profile.to_dict()
        cfg = dict(cfg or {})
        unknown = set(cfg) - set(defaults)
        if unknown:
            raise ValueError(f"config.profile: unknown fields {sorted(unknown)}; it takes "
                             "start_step, num_steps, all_processes and perfetto.")
        cfg = {**defaults, **cfg}
        self.start = cfg["start_step"]
        num = cfg["num_steps"]
        checked = (("num_steps", num),) if self.start is None else (
            ("start_step", self.start), ("num_steps", num))
        for name, value in checked:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"config.profile.{name}={value!r}: give a step count >= 1 "
                                 "(e.g. --config.profile.start_step=100 "
                                 "--config.profile.num_steps=5).")
        # A window past the run's end stops with its last step.
        self.end = None if self.start is None else min(self.start + num, total_steps + 1)
        if self.start is not None and self.start > total_steps:
            logging.warning("config.profile.start_step=%d is past the last step %d: "
                            "nothing is traced.", self.start, total_steps)
        process_index = jax.process_index() if process_index is None else process_index
        all_processes = bool(cfg["all_processes"])
        self.enabled = self.start is not None and (process_index == 0 or all_processes)
        self.directory = fs.join(workdir, "profile")
        if all_processes:
            self.directory = fs.join(self.directory, f"process_{process_index}")
        # jax.profiler writes local files only: elsewhere (gs://) it traces
        # into a local folder that is uploaded when the trace stops.
        self._local = None
        self.perfetto = bool(cfg["perfetto"])
        # The step timer of the loop, if any: starting and writing the trace
        # is left out of its breakdown.
        self.timer: StepTimer | None = None
        self.active = False
        self.traced: tuple[int, int] | None = None  # (first, last) step traced

    def before_step(self, step: int, state: Any) -> None:
        """Starts the trace at the window's first step this run reaches, once the
        steps before it have finished."""
        if (not self.enabled or self.active or self.traced is not None
                or not self.start <= step < self.end):
            return
        jax.block_until_ready(state)
        if fs.is_url(self.directory):
            self._local = fs.local_temp_dir("bvl_profile_")
        with self._excluded():
            jax.profiler.start_trace(self._local or self.directory,
                                     create_perfetto_trace=self.perfetto)
        self.active, self.traced = True, (step, step)

    def after_step(self, step: int, outputs: Any) -> None:
        """Stops the trace after the window's last step, its outputs ready."""
        if self.active:
            self.traced = (self.traced[0], step)
            if step == self.end - 1:
                jax.block_until_ready(outputs)
                self._stop()

    def close(self) -> None:
        """Ends a trace that an error stopped inside the window."""
        if self.active:
            self._stop()

    def _excluded(self) -> contextlib.AbstractContextManager:
        return self.timer.excluded() if self.timer is not None else contextlib.nullcontext()

    def _stop(self) -> None:
        self.active = False
        with self._excluded():
            jax.profiler.stop_trace()
            if self._local is not None:
                fs.copy_tree(self._local, self.directory)
                shutil.rmtree(self._local, ignore_errors=True)
                self._local = None
        first, last = self.traced
        logging.info("profile of steps %d-%d written to %s: tensorboard --logdir %s "
                     "(Profile tab)%s", first, last, self.directory, self.directory,
                     ", or perfetto_trace.json.gz under it on ui.perfetto.dev"
                     if self.perfetto else "")
