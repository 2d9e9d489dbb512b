"""Worker for test_multiprocess: restore a checkpoint onto this process's topology.

    python tests/multiprocess/restore.py CKPT_DIR REF.npz DATA MODEL [COORD N ID]

Checks every shard this process holds against the reference parameters.
"""

import sys

import jax
import numpy as np

from big_vision_like import checkpointing, distributed, sharding, train_step
from big_vision_like import mesh as mesh_lib
from tests.multiprocess import small_setup

if len(sys.argv) > 5:
    distributed.initialize(sys.argv[5], int(sys.argv[6]), int(sys.argv[7]))
ckpt_dir, ref_path, data, model_axis = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:5])
mesh = mesh_lib.make_mesh(data, model_axis)
fresh, shardings, _ = small_setup.build(mesh, "head", seed=1)  # values overwritten
ckpt = checkpointing.Checkpointer(ckpt_dir)
state, _ = ckpt.restore(ckpt.latest_step(), train_step.abstract_with_shardings(fresh, shardings))
ref = np.load(ref_path)
checked = 0
for path, leaf in jax.tree_util.tree_leaves_with_path(state.params):
    want = ref[sharding.path_str(path)]
    for shard in leaf.addressable_shards:
        np.testing.assert_array_equal(np.asarray(shard.data), want[shard.index])
        checked += 1
print(f"process {jax.process_index()}: {checked} shards identical on mesh "
      f"{data}x{model_axis} of {jax.device_count()} devices")
ckpt.close()
