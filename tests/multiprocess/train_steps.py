"""Worker for test_multiprocess: a few sharded train steps; prints losses as JSON.

    python tests/multiprocess/train_steps.py OUT.json [COORDINATOR NUM_PROCESSES ID [DIE]]

With DIE, process 1 exits abruptly before the second step (a lost host).
"""

import json
import os
import sys

import jax
import numpy as np

from big_vision_like import distributed
from big_vision_like import mesh as mesh_lib
from input_pipeline.stream.device import to_global
from tests.multiprocess import small_setup

if len(sys.argv) > 2:
    distributed.initialize(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]),
                           heartbeat_timeout_seconds=10)
assert jax.device_count() == 8, jax.devices()

mesh = mesh_lib.make_mesh(4, 2)
state, _, step = small_setup.build(mesh, "fsdp")
out = []
for i in range(3):
    if i == 1 and len(sys.argv) > 5 and jax.process_index() == 1:
        os._exit(17)  # no goodbye to the coordinator: like a machine that is lost
    rng = np.random.default_rng(i)  # the same global batch in every topology
    batch = {"image": rng.normal(size=(16, 32, 32, 3)).astype(np.float32),
             "labels": (rng.random((16, 16)) < 0.2).astype(np.float32)}
    # Each process hands over only its own rows of the global batch.
    n, k = jax.process_count(), jax.process_index()
    local = {key: v[k * len(v) // n:(k + 1) * len(v) // n] for key, v in batch.items()}
    state, metrics = step(state, to_global(local, mesh_lib.batch_sharding(mesh)))
    out.append(float(metrics["train/loss"]))
if jax.process_index() == 0:
    with open(sys.argv[1], "w") as f:
        json.dump(out, f)
