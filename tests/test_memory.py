"""Per-device memory of the 18,291-way head falls in proportion to the model axis."""

import pytest

from big_vision_like import mesh as mesh_lib
from big_vision_like import optim, sharding
from big_vision_like.memory import HeadOnly, train_step_memory
from big_vision_like.tasks.classification import round_up_classes

C, D, BATCH = 18_291, 2048, 64


@pytest.fixture(scope="module")
def head_bytes():
    tx = optim.build_optimizer({"name": "rmsprop", "weight_decay": 1e-4}, 1e-3)
    out = {}
    for data, model in [(8, 1), (4, 2), (2, 4), (1, 8)]:
        mesh = mesh_lib.make_mesh(data, model)
        width = round_up_classes(C, mesh)
        mem = train_step_memory(HeadOnly(width), tx, mesh, sharding.HEAD_SHARDED_RULES,
                                (D,), BATCH, C)
        batch = BATCH // data * (D + C) * 4  # this device's features and labels
        out[model] = (mem.arguments - batch, width)
    return out


def test_head_memory_falls_with_the_model_axis(head_bytes):
    for model, (got, width) in head_bytes.items():
        # kernel + bias, and RMSProp's two slots for each; the step counters are tiny.
        want = 3 * (D * width + width) * 4 / model
        assert want <= got < want * 1.01 + 4096, (model, got, want)
    full = head_bytes[1][0]
    for model in (2, 4, 8):
        assert head_bytes[model][0] / full == pytest.approx(1 / model, rel=0.01)
