"""The project's uses of libraries' private internals, kept in one place.

Each exists because the library has no public way to do what is needed; each
is checked by tests/test_library_workarounds.py, which fails when an upgrade
removes or renames what is relied on (the code itself degrades quietly, so a
test is what notices).

- orbax: after a failed asynchronous save, its signalling threads wait for
  signals that never come (300 s, not daemons), so the process cannot exit
  (`release_orbax_waiting_save_threads`; orbax._src.futures.future).
- Ending the process after a failed save (`exit_now`): a normal interpreter
  exit runs orbax's and tensorstore's leftovers (coroutines never awaited,
  callbacks into a closed event loop), which print after the run's one-line
  error; os._exit skips them once everything the run writes is closed.
"""

from __future__ import annotations

import os
import sys
import threading

import jax


def release_orbax_waiting_save_threads() -> None:
    """Ends orbax's background threads that wait for a failed save.

    A failed save never signals the threads queued behind it (metadata,
    finalisation); they are not daemons and wait orbax's 300 s coordination
    timeout, so the process could not exit. Cancelled, then woken, they
    return without doing anything. Only on one process: there the signals
    are local, while several processes share them.
    """
    if jax.process_count() != 1:
        return
    try:
        from orbax.checkpoint._src.futures import future as ocp_future

        for thread in threading.enumerate():
            if isinstance(thread, ocp_future._SignalingThread) and thread.is_alive():
                thread.cancel()
                ocp_future.set_signals(thread._receive_signals,
                                       operation_id=thread._operation_id)
    except (ImportError, AttributeError):  # another orbax: they time out instead
        pass


def exit_now(message: str, status: int = 1) -> None:
    """Ends the process at once with `message` as the last line of stderr."""
    from absl import logging as absl_logging

    absl_logging.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    sys.__stderr__.write(message + "\n")
    sys.__stderr__.flush()
    os._exit(status)
