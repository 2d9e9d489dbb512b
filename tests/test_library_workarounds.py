"""What big_vision_like/library_workarounds.py relies on in libraries' private
internals is still there: an upgrade that renames it fails here, by name,
rather than as a run that hangs 300 s after a failed save (the behaviour itself
is tested end to end in test_faults_training.py's
test_run_that_cannot_checkpoint_exits_promptly_with_one_message)."""

import inspect
import subprocess
import sys


def test_orbax_signalling_threads_are_as_released():
    from orbax.checkpoint._src.futures import future

    thread_class = future._SignalingThread
    assert callable(getattr(thread_class, "cancel", None))
    init = inspect.getsource(thread_class.__init__)
    assert "self._receive_signals" in init and "self._operation_id" in init
    params = inspect.signature(future.set_signals).parameters
    assert len(params) == 2 and "operation_id" in params  # (signals, *, operation_id)


def test_exit_now_ends_with_the_message_and_the_status():
    code = ("import threading, time\n"
            "from big_vision_like import library_workarounds\n"
            "threading.Thread(target=time.sleep, args=(60,)).start()  # not a daemon\n"
            "library_workarounds.exit_now('error: the one line', 3)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 3
    assert out.stderr.strip().splitlines()[-1] == "error: the one line"
