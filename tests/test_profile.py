"""Profiler traces of chosen steps, and the step-time breakdown in metrics.jsonl."""

import glob
import gzip
import json
import os
import time

import ml_collections
import pytest

from big_vision_like import trainer
from big_vision_like.metrics import read_metrics
from big_vision_like.profiling import ProfileWindow, StepTimer
from input_pipeline.stream import batches
from tests.helpers import data_dir_of, tiny_config

TIME_KEYS = ("time/step_ms", "time/input_ms", "time/compute_ms", "time/input_wait_fraction")
# Per batch, in the slow input pipeline: well above a tiny step's compute
# (80-180 ms with the tests' -O0 XLA:CPU code), so the pipeline sets the pace.
SLEEP_S = 0.6
# One execution of the jitted train step (make_train_step names it `step`).
TRAIN_STEP_EVENT = "CommonPjRtLoadedExecutable::Execute (jit_step)"


def _config(tiny_source, **profile):
    c = tiny_config(data_dir_of(tiny_source))
    # The train step compiles as in the other tiny runs (8 steps, one cosine
    # schedule), so the compilation cache has it.
    c.evals = ml_collections.ConfigDict()  # only the loop is timed here
    c.log_steps = 2
    c.ckpt_steps = 100  # saved once, at the end
    c.input.prefetch = 1
    c.profile.update(profile)
    return c


class _FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class _Batches:
    """An iterator whose every next() takes `wait` seconds of the fake clock."""

    def __init__(self, clock, wait):
        self.clock, self.wait = clock, wait

    def __next__(self):
        self.clock.now += self.wait
        return {}


def test_step_timer_splits_input_wait_from_compute_and_leaves_out_evals():
    clock = _FakeClock()
    timer = StepTimer(clock)
    batches = _Batches(clock, 0.030)
    rows = {}
    for step in range(1, 11):
        timer.next(batches)
        clock.now += 0.070  # the step's device time, seen when its loss is read
        if step == 5:
            with timer.excluded():
                clock.now += 3.0  # an evaluation
        rows[step] = timer.mark(step, report=step % 5 == 0)
    assert rows[1] == {}  # starts the clock: the steps before hold compilation
    assert all(rows[s] == {} for s in (2, 3, 4, 6, 7, 8, 9))
    for s in (5, 10):
        assert rows[s]["time/step_ms"] == pytest.approx(100.0)
        assert rows[s]["time/input_ms"] == pytest.approx(30.0)
        assert rows[s]["time/compute_ms"] == pytest.approx(70.0)
        assert rows[s]["time/input_wait_fraction"] == pytest.approx(0.3)


def test_profile_config_is_checked():
    with pytest.raises(ValueError, match="num_steps=0"):
        ProfileWindow({"start_step": 3, "num_steps": 0}, "w", 10, process_index=0)
    with pytest.raises(ValueError, match="unknown fields"):
        ProfileWindow({"start_step": 3, "steps": 2}, "w", 10, process_index=0)
    assert not ProfileWindow({"start_step": None}, "w", 10, process_index=0).enabled
    assert not ProfileWindow({"start_step": 3}, "w", 10, process_index=1).enabled
    both = ProfileWindow({"start_step": 3, "all_processes": True}, "w", 10, process_index=1)
    assert both.enabled and both.directory == os.path.join("w", "profile", "process_1")


def _timing_rows(workdir):
    return {r["step"]: r for r in read_metrics(workdir) if "time/step_ms" in r}


def _check_ranges(rows):
    for r in rows.values():
        assert 0.0 <= r["time/input_wait_fraction"] <= 1.0
        assert r["time/step_ms"] > 0 and r["time/input_ms"] >= 0 and r["time/compute_ms"] >= 0
        assert r["time/input_ms"] + r["time/compute_ms"] == pytest.approx(r["time/step_ms"])
        assert r["time/input_wait_fraction"] == pytest.approx(
            r["time/input_ms"] / r["time/step_ms"])


@pytest.fixture(scope="module")
def profiled_run(tiny_source, tmp_path_factory):
    """The workdir of 8 steps with a trace of steps 4-5."""
    workdir = str(tmp_path_factory.mktemp("profiled"))
    trainer.train(_config(tiny_source, start_step=4, num_steps=2), workdir)
    return workdir


def test_profile_writes_a_trace_of_the_chosen_steps(profiled_run):
    runs = glob.glob(os.path.join(profiled_run, "profile", "plugins", "profile", "*"))
    assert len(runs) == 1, runs  # one window, one trace
    xplanes = glob.glob(os.path.join(runs[0], "*.xplane.pb"))
    assert xplanes and os.path.getsize(xplanes[0]) > 0
    with gzip.open(os.path.join(runs[0], "perfetto_trace.json.gz")) as f:
        trace = json.load(f)
    events = trace["traceEvents"]
    # The thread that dispatched the step (the training loop) ran it twice,
    # once per traced step: the trace holds the window and nothing more.
    loop = {(e["pid"], e["tid"]) for e in events if e.get("name") == "PjitFunction(step)"}
    runs = [e for e in events if e.get("name") == TRAIN_STEP_EVENT
            and (e["pid"], e["tid"]) in loop]
    assert len(loop) == 1 and len(runs) == 2, sorted({e.get("name") for e in events})[:50]


def test_step_time_breakdown_is_logged_every_log_steps(profiled_run):
    rows = _timing_rows(profiled_run)
    # Timed from step 1's end on (compilation comes before it).
    assert sorted(rows) == [2, 4, 6, 8]
    _check_ranges(rows)


def test_slow_input_shows_as_input_wait(tiny_source, profiled_run, tmp_path, monkeypatch):
    class SlowHost(batches.HostIterator):
        def __next__(self):
            time.sleep(SLEEP_S)
            return super().__next__()

    monkeypatch.setattr(batches, "HostIterator", SlowHost)
    trainer.train(_config(tiny_source), str(tmp_path))
    slow, normal = _timing_rows(str(tmp_path)), _timing_rows(profiled_run)
    _check_ranges(slow)
    # The prefetcher held batches read during compilation: by step 5 they are
    # spent and each step waits for the pipeline, one batch per SLEEP_S. (Row 8
    # is the last step, read at once rather than one step late: its interval
    # holds one batch wait for two steps.) On a loaded machine compilation is
    # slower and one prefetched batch can still serve step 5 (seen: 464 ms for
    # row 6); at least one of the two steps waits a whole batch either way.
    assert slow[6]["time/step_ms"] >= 0.5e3 * SLEEP_S  # the pipeline's pace
    assert slow[6]["time/step_ms"] > normal[6]["time/step_ms"]
    assert slow[6]["time/input_wait_fraction"] > 0.5
    assert normal[6]["time/input_wait_fraction"] < 0.5
    assert slow[6]["time/input_wait_fraction"] > normal[6]["time/input_wait_fraction"]
