"""Worker for test_preemption: two processes stop an evaluation at one batch.

    python tests/multiprocess/preempt_eval.py COORDINATOR NUM_PROCESSES ID READY_FILE

Runs an "evaluation" of 20 ms batches calling `raise_if_agreed` before each, as
the trainer's data pipeline does; process 1 creates READY_FILE at batch 5 (then
the test sends it a signal). Prints {"mode", "batch"} for the batch at which
StopRequested came, or batch -1 if it never did.
"""

import json
import pathlib
import sys
import time

import jax

from big_vision_like import distributed
from big_vision_like.preemption import PreemptionWatch, StopRequested

distributed.initialize(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
with PreemptionWatch() as stop:
    stop.start(0)
    batch = -1
    try:
        for i in range(1, 3000):
            stop.raise_if_agreed()
            time.sleep(0.02)
            if i == 5 and jax.process_index() == 1:
                pathlib.Path(sys.argv[4]).touch()
    except StopRequested:
        batch = i
    print(json.dumps({"mode": stop.mode, "batch": batch}), flush=True)
