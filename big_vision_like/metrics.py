"""Metric streams of a run: JSON lines, TensorBoard events, a progress line.

`<workdir>/metrics.jsonl` gets one object per logged step with "step" and
the metric names. Only process 0 writes.

On a local disk the file is appended to across resumes, never rewritten. A
resumed run replays the steps after its last checkpoint, so the file can
hold several rows of one step; `read_metrics` folds them into one row per
step, later values winning. A line cut short by a killed process is skipped.

An object store (gs://) cannot append: there the writer keeps the rows,
already folded to one per step, and replaces the whole file at most every
`upload_every_seconds`, at each `flush()` (the trainer flushes when it saves
a checkpoint) and at the end. A run killed in between loses the rows since
the last upload, which its resume replays and writes again.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any

from absl import logging

from big_vision_like import filesystem as fs


class MetricWriter:
    def __init__(self, workdir: str, enabled: bool = True,
                 upload_every_seconds: float = 60.0):
        self.enabled = enabled
        self.path = fs.join(workdir, "metrics.jsonl")
        self._tb = None
        self._rows: dict[int, dict] | None = None  # where the file cannot be appended to
        self._upload_every = upload_every_seconds
        self._uploaded = time.monotonic()
        if enabled:
            fs.makedirs(workdir)
            if fs.can_append(self.path):
                _end_partial_line(self.path)
            else:
                self._rows = {row["step"]: row for row in _read_rows(self.path)
                              if isinstance(row.get("step"), int)}
            import tensorflow as tf  # host-side only, for TensorBoard event files

            self._tf = tf
            self._tb = tf.summary.create_file_writer(fs.join(workdir, "tensorboard"))

    def write(self, step: int, metrics: dict[str, Any]) -> None:
        if not self.enabled or not metrics:
            return
        row = {"step": int(step)}
        row.update({k: _scalar(v) for k, v in metrics.items()})
        if self._rows is None:
            with fs.open(self.path, "a") as f:
                f.write(json.dumps(row) + "\n")
        else:
            self._rows.setdefault(row["step"], {}).update(row)
            if time.monotonic() - self._uploaded >= self._upload_every:
                self._upload()
        with self._tb.as_default(step=int(step)):
            for k, v in row.items():
                if k != "step" and isinstance(v, (int, float)) and math.isfinite(v):
                    self._tf.summary.scalar(k, v)

    def flush(self) -> None:
        if self._rows is not None:
            self._upload()
        if self._tb is not None:
            self._tb.flush()

    def _upload(self) -> None:
        fs.write_atomic(self.path, "".join(json.dumps(self._rows[s]) + "\n"
                                           for s in sorted(self._rows)))
        self._uploaded = time.monotonic()


def _scalar(v: Any) -> Any:
    try:
        return float(v)
    except (TypeError, ValueError):
        return v


def _end_partial_line(path: str) -> None:
    """Ends a last line cut short by a killed run, so the next row starts clean.
    Local files only: the others are never appended to."""
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
    by_step: dict[int, dict] = {}
    for row in _read_rows(fs.join(workdir, "metrics.jsonl")):
        by_step.setdefault(row.get("step"), {}).update(row)
    return [by_step[s] for s in sorted(by_step, key=lambda s: (s is None, s or 0))]


def _read_rows(path: str) -> list[dict]:
    """The rows of a metrics.jsonl as written, skipping lines that are not JSON."""
    if not fs.exists(path):
        return []
    rows = []
    with fs.open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                logging.warning("%s:%d is not a JSON row (cut short by a killed run?); "
                                "skipped", path, number)
    return rows


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
