"""Worker for test_multiprocess: restore a checkpoint onto this process's topology.

    python tests/multiprocess/restore.py CKPT_DIR REF.npz DATA MODEL [COORD N ID]

Checks every shard this process holds against the reference parameters.
"""

import sys

import jax
import numpy as np
import optax

from big_vision_like import checkpointing, distributed, sharding, train_step
from big_vision_like import mesh as mesh_lib
from big_vision_like.models.resnet import ResNet

if len(sys.argv) > 5:
    distributed.initialize(sys.argv[5], int(sys.argv[6]), int(sys.argv[7]))
ckpt_dir, ref_path, data, model_axis = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:5])
mesh = mesh_lib.make_mesh(data, model_axis)
model = ResNet(depth=18, num_classes=16, width=0.25)
tx = optax.sgd(0.1, momentum=0.9)
fresh, shardings = train_step.create_train_state(
    model, tx, (32, 32, 3), jax.random.key(1), mesh, sharding.PRESETS["head"])
ckpt = checkpointing.Checkpointer(ckpt_dir)
state, _ = ckpt.restore(ckpt.latest_step(), checkpointing.abstract_like(fresh, shardings))
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
