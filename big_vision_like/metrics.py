"""Metric streams of a run: JSON lines, TensorBoard events, a progress line.

`<workdir>/metrics.jsonl` gets one object per logged step with "step" and
the metric names; it is appended to across resumes, never rewritten. Only
process 0 writes.

A resumed run replays the steps after its last checkpoint, so the file can
hold several rows of one step; `read_metrics` folds them into one row per
step, later values winning. A line cut short by a killed process is skipped.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any

from absl import logging


class MetricWriter:
    def __init__(self, workdir: str, enabled: bool = True):
        self.enabled = enabled
        self.path = os.path.join(workdir, "metrics.jsonl")
        self._tb = None
        if enabled:
            os.makedirs(workdir, exist_ok=True)
            _end_partial_line(self.path)
            import tensorflow as tf  # host-side only, for TensorBoard event files

            self._tf = tf
            self._tb = tf.summary.create_file_writer(os.path.join(workdir, "tensorboard"))

    def write(self, step: int, metrics: dict[str, Any]) -> None:
        if not self.enabled or not metrics:
            return
        row = {"step": int(step)}
        row.update({k: _scalar(v) for k, v in metrics.items()})
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        with self._tb.as_default(step=int(step)):
            for k, v in row.items():
                if k != "step" and isinstance(v, (int, float)) and math.isfinite(v):
                    self._tf.summary.scalar(k, v)

    def flush(self) -> None:
        if self._tb is not None:
            self._tb.flush()


def _scalar(v: Any) -> Any:
    try:
        return float(v)
    except (TypeError, ValueError):
        return v


def _end_partial_line(path: str) -> None:
    """Ends a last line cut short by a killed run, so the next row starts clean."""
    try:
        with open(path, "rb+") as f:
            if f.seek(0, os.SEEK_END) == 0:
                return
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                f.write(b"\n")
    except FileNotFoundError:
        pass


def read_metrics(workdir: str) -> list[dict]:
    """One row per step, in step order: rows of the same step merged, the
    later row's values winning (a replayed step after a resume, or train and
    eval metrics written separately at one step)."""
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    by_step: dict[int, dict] = {}
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                logging.warning("%s:%d is not a JSON row (cut short by a killed run?); "
                                "skipped", path, number)
                continue
            by_step.setdefault(row.get("step"), {}).update(row)
    return [by_step[s] for s in sorted(by_step, key=lambda s: (s is None, s or 0))]


class Progress:
    """A log line every `every_seconds`: step, loss, lr, img/s, examples, ETA."""

    def __init__(self, total_steps: int, batch_size: int, start_step: int,
                 every_seconds: float = 5.0):
        self.total, self.batch = total_steps, batch_size
        self.every = every_seconds
        self._t0 = self._last_t = time.perf_counter()
        self._last_step = start_step

    def maybe_log(self, step: int, loss: float, lr: float, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self._last_t < self.every:
            return
        rate = (step - self._last_step) * self.batch / max(now - self._last_t, 1e-9)
        eta = (self.total - step) * self.batch / rate if rate > 0 else float("nan")
        logging.info("step %d/%d  loss %.4f  lr %.3g  %.1f img/s  %d examples  ETA %s",
                     step, self.total, loss, lr, rate, step * self.batch, _hms(eta))
        self._last_t, self._last_step = now, step


def _hms(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
