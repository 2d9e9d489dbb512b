"""Keeping a failed checkpoint save to one message on the command line.

When an asynchronous orbax save fails (full disk, read-only folder), the
failure shows up many times over: orbax logs it once per background thread
with a traceback, and tensorstore writes still in flight call back into
the failed save's closed event loop, each printing a "RuntimeError: Event
loop is closed" traceback, hundreds of lines in all. The run reports the
failure itself (`checkpointing.CheckpointError`), so these are noise.
"""

from __future__ import annotations

import io
import logging
import os
import sys
import threading


def one_line_for_orbax_errors(record: logging.LogRecord) -> bool:
    """A logging filter: orbax's error records without their tracebacks."""
    if "/orbax/" in record.pathname and record.exc_info:
        record.exc_info, record.exc_text = None, None
    return True


class DropClosedLoopTracebacks(io.TextIOBase):
    """A text stream passing everything on except tracebacks that end in
    "RuntimeError: Event loop is closed".

    A traceback is held from its "Traceback" line to its first unindented
    line (tracebacks that interleave, printed by several threads at once,
    until all have ended); any other ending lets them through whole, so
    nothing else is lost.
    """

    _START = "Traceback (most recent call last)"
    _END = "RuntimeError: Event loop is closed"

    def __init__(self, stream):
        super().__init__()
        self._stream = stream
        self._lock = threading.Lock()
        self._partial = ""
        self._held: list[str] | None = None  # lines of the tracebacks being read
        self._open = 0  # of them, how many have not ended yet
        self._only_closed_loop = True

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            if self._held is None and not self._partial and "Traceback" not in text:
                # Unbuffered, so progress bars stay live; only what may be the
                # start of a traceback waits for the rest of its line.
                head, newline, tail = text.rpartition("\n")
                if tail and self._START.startswith(tail.lstrip("\r")):
                    self._stream.write(head + newline)
                    self._partial = tail
                else:
                    self._stream.write(text)
                return len(text)
            *lines, self._partial = (self._partial + text).split("\n")
            for line in lines:
                self._line(line + "\n")
        return len(text)

    def _line(self, line: str) -> None:
        starts = line.startswith(self._START)
        if self._held is None:
            if not starts:
                self._stream.write(line)
                return
            self._held, self._open, self._only_closed_loop = [], 0, True
        self._held.append(line)
        if starts:  # threads print at once: tracebacks interleave line by line
            self._open += 1
        elif not line[:1].isspace():
            self._open -= 1
            self._only_closed_loop &= line.strip() == self._END
        if self._open <= 0:
            if not self._only_closed_loop:
                self._stream.write("".join(self._held))
            self._held = None

    def flush(self) -> None:
        with self._lock:
            if self._held is not None and self._partial:
                self._held.append(self._partial)
                self._partial = ""
            self._stream.write("".join(self._held or []) + self._partial)
            self._held, self._partial = None, ""
            self._stream.flush()

    def fileno(self) -> int:
        return self._stream.fileno()

    def isatty(self) -> bool:
        return self._stream.isatty()

    @property
    def encoding(self) -> str:
        return self._stream.encoding


def exit_with(message: str) -> None:
    """Ends the process at once with `message` as the last line of stderr.

    A failed save leaves orbax threads and coroutines behind; a normal
    interpreter exit would wait for them or print their errors after ours.
    Everything the run writes is closed already (the trainer's `finally`).
    """
    from absl import logging as absl_logging

    absl_logging.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    sys.__stderr__.write(message + "\n")
    sys.__stderr__.flush()
    os._exit(1)
