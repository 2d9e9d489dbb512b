"""Worker for test_preemption: two processes agree on the step to stop at.

    python tests/multiprocess/preempt_watch.py COORDINATOR NUM_PROCESSES ID READY_FILE

Steps every 20 ms; process 1 creates READY_FILE at step 5 (then the test sends
it SIGTERM). Prints {"mode", "step", "check_ms"} when `should_stop` says so;
check_ms is the mean time of a `should_stop` call.
"""

import json
import pathlib
import sys
import time

import jax

from big_vision_like import distributed
from big_vision_like.preemption import PreemptionWatch

distributed.initialize(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
with PreemptionWatch() as stop:
    stop.start(0)
    spent = 0.0
    for step in range(1, 3000):
        time.sleep(0.02)
        if step == 5 and jax.process_index() == 1:
            pathlib.Path(sys.argv[4]).touch()
        t = time.perf_counter()
        done = stop.should_stop(step)
        spent += time.perf_counter() - t
        if done:
            break
    print(json.dumps({"mode": stop.mode, "step": step, "check_ms": 1e3 * spent / step}))
