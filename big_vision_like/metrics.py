"""Metric streams of a run: JSON lines, TensorBoard events, a progress line.

`<workdir>/metrics.jsonl` gets one object per logged step with "step" and
the metric names; it is appended to across resumes, never rewritten. Only
process 0 writes.
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


def read_metrics(workdir: str) -> list[dict]:
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


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
