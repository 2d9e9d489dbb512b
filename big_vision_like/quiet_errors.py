"""Keeping a failed checkpoint save to one message on the command line.

When an asynchronous orbax save fails (full disk, read-only folder), the
failure shows up many times over: orbax logs it once per background thread
with a traceback; asyncio logs "Task exception was never retrieved" with a
traceback for each of orbax's array writes that failed after the first;
and tensorstore writes still in flight call back into the failed save's
closed event loop, each printing a "RuntimeError: Event loop is closed"
traceback (an unraisable exception), hundreds of lines in all. The run
reports the failure itself (`checkpointing.CheckpointError`), so these are
noise.
"""

from __future__ import annotations

import asyncio.base_events
import logging
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import Any

from big_vision_like import library_workarounds


def quiet_orbax_errors(record: logging.LogRecord) -> bool:
    """A logging filter: orbax's error records without their tracebacks, and
    none of asyncio's reports of orbax tasks whose error nobody retrieved
    (orbax raised the first of them; the rest say the same)."""
    if record.exc_info and "/orbax/" in record.pathname:
        record.exc_info, record.exc_text = None, None
    elif record.exc_info and record.name == "asyncio" and _raised_in_orbax(record.exc_info[2]):
        return False
    return True


def _raised_in_orbax(tb: TracebackType | None) -> bool:
    return any("/orbax/" in frame.filename for frame in traceback.extract_tb(tb))


def drop_closed_loop_errors(passed_on: Callable[[Any], None]) -> Callable[[Any], None]:
    """A `sys.unraisablehook` dropping asyncio's "Event loop is closed"
    errors and passing every other unraisable exception to `passed_on`.

    Tensorstore reports a callback that fails in its own threads as an
    unraisable exception: a hook sees each whole, whichever thread prints
    at the same time (a filter on stderr's text could not tell interleaved
    tracebacks apart reliably).
    """
    def hook(unraisable: Any) -> None:
        if not _is_closed_loop(unraisable.exc_value, unraisable.exc_traceback):
            passed_on(unraisable)

    return hook


def _is_closed_loop(error: BaseException | None, tb: TracebackType | None) -> bool:
    if not isinstance(error, RuntimeError) or str(error) != "Event loop is closed" or not tb:
        return False
    last = traceback.extract_tb(tb)[-1]
    return last.name == "_check_closed" and last.filename == asyncio.base_events.__file__


def exit_with(message: str) -> None:
    """Ends the process at once with `message` as the last line of stderr.

    A failed save leaves orbax threads and coroutines behind; a normal
    interpreter exit would wait for them or print their errors after ours
    (library_workarounds.exit_now says why it cannot be a normal exit).
    Everything the run writes is closed already (the trainer's `finally`).
    """
    library_workarounds.exit_now(message, 1)
