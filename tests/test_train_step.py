"""The sharded train step computes what a single device computes."""

import jax
import numpy as np
import optax
import pytest

from big_vision_like import mesh as mesh_lib
from big_vision_like import optim, sharding, train_step
from big_vision_like.models.resnet import ResNet
from big_vision_like.tasks.classification import ClassificationTask, round_up_classes

NUM_CLASSES = 64


def one_step(mesh, num_classes=NUM_CLASSES, rules=sharding.HEAD_SHARDED_RULES, frozen=None,
             loss="sigmoid_xent"):
    width = round_up_classes(num_classes, mesh)
    task = ClassificationTask(ResNet(depth=18, num_classes=width, width=0.25,
                                     head_bias_init=-2.0, frozen=frozen), num_classes, loss)
    tx = optim.wrap_for_transfer(
        optax.chain(optax.add_decayed_weights(1e-4),
                    optax.rmsprop(1e-3, decay=0.9, momentum=0.9, eps=1.0)),
        frozen=frozen, lr_mults=(("^head/", 10.0),) if frozen else None)
    state, shardings = train_step.create_train_state(
        task, tx, (32, 32, 3), jax.random.key(0), mesh, rules)
    step = train_step.jit_train_step(
        train_step.make_train_step(task, tx, mesh, frozen=frozen), shardings, mesh)
    rng = np.random.default_rng(0)
    labels = (rng.random((8, num_classes)) < 0.1) if loss == "sigmoid_xent" else \
        np.eye(num_classes)[rng.integers(0, num_classes, 8)]
    batch = {"image": rng.normal(size=(8, 32, 32, 3)).astype(np.float32),
             "labels": labels.astype(np.float32)}
    batch = jax.device_put(batch, mesh_lib.batch_sharding(mesh))
    for _ in range(2):
        state, metrics = step(state, batch)
    return state, metrics


@pytest.fixture(scope="module")
def single():
    return one_step(mesh_lib.make_mesh(1, 1, devices=jax.devices()[:1]))


def test_two_by_four_mesh_matches_one_device(single):
    state1, metrics1 = single
    state8, metrics8 = one_step(mesh_lib.make_mesh(2, 4))
    np.testing.assert_allclose(metrics8["train/loss"], metrics1["train/loss"], rtol=1e-4)
    for a, b in zip(jax.tree.leaves(state8.params), jax.tree.leaves(state1.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
    for a, b in zip(jax.tree.leaves(state8.model_state), jax.tree.leaves(state1.model_state)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


def test_head_and_its_optimizer_slots_are_sharded_over_model():
    state, _ = one_step(mesh_lib.make_mesh(2, 4))
    kernel = state.params["head"]["kernel"]
    assert {s.data.shape for s in kernel.addressable_shards} == {(128, NUM_CLASSES // 4)}
    slots = [x for p, x in jax.tree_util.tree_leaves_with_path(state.opt_state)
             if "head" in sharding.path_str(p) and x.ndim == 2]
    assert slots and all({s.data.shape for s in x.addressable_shards}
                         == {(128, NUM_CLASSES // 4)} for x in slots)
    conv = state.params["conv1"]["kernel"]  # the backbone stays replicated
    assert {s.data.shape for s in conv.addressable_shards} == {conv.shape}


@pytest.mark.slow
def test_padded_head_trains_like_the_unpadded_one():
    # 10 classes on 4 model shards: the head is 12 wide, 2 columns masked out.
    state1, metrics1 = one_step(mesh_lib.make_mesh(1, 1, devices=jax.devices()[:1]), 10)
    state8, metrics8 = one_step(mesh_lib.make_mesh(2, 4), 10)
    assert state8.params["head"]["kernel"].shape[1] == 12
    np.testing.assert_allclose(metrics8["train/loss"], metrics1["train/loss"], rtol=1e-4)
    np.testing.assert_allclose(np.asarray(state8.params["head"]["kernel"])[:, :10],
                               np.asarray(state1.params["head"]["kernel"]), rtol=1e-4,
                               atol=1e-6)
    np.testing.assert_array_equal(np.asarray(state8.params["head"]["kernel"])[:, 10:], 0)


def test_indivisible_head_is_a_clear_error():
    task = ClassificationTask(ResNet(depth=18, num_classes=10, width=0.25), 10)
    with pytest.raises(ValueError, match="head/(kernel|bias) has dimension 10, not divisible"):
        train_step.create_train_state(task, optax.sgd(0.1), (32, 32, 3), jax.random.key(0),
                                      mesh_lib.make_mesh(2, 4), sharding.HEAD_SHARDED_RULES)


def test_fsdp_matches_one_device_and_shards_the_backbone(single):
    state1, metrics1 = single
    state8, metrics8 = one_step(mesh_lib.make_mesh(2, 4), rules=sharding.PRESETS["fsdp"])
    np.testing.assert_allclose(metrics8["train/loss"], metrics1["train/loss"], rtol=1e-4)
    for a, b in zip(jax.tree.leaves(state8.params), jax.tree.leaves(state1.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
    kernel = state8.params["conv5_block1"]["conv2"]["kernel"]  # 3x3x128x128
    assert {s.data.shape for s in kernel.addressable_shards} == {(3, 3, 128, 64)}
    slots = [x for p, x in jax.tree_util.tree_leaves_with_path(state8.opt_state)
             if sharding.path_str(p).endswith("conv5_block1/conv2/kernel")]
    assert slots and all({s.data.shape for s in x.addressable_shards} == {(3, 3, 128, 64)}
                         for x in slots)
    head = state8.params["head"]["kernel"]
    assert {s.data.shape for s in head.addressable_shards} == {(128, NUM_CLASSES // 4)}


def test_sharded_fine_tuning_step_matches_one_device():
    """Frozen stages, a softmax over a padded class-sharded head, lr multipliers."""
    kw = dict(num_classes=10, frozen="^(conv1|conv[2-4])", loss="softmax_xent")
    state1, metrics1 = one_step(mesh_lib.make_mesh(1, 1, devices=jax.devices()[:1]), **kw)
    state8, metrics8 = one_step(mesh_lib.make_mesh(2, 4), **kw)
    np.testing.assert_allclose(metrics8["train/loss"], metrics1["train/loss"], rtol=1e-4)
    np.testing.assert_allclose(np.asarray(state8.params["head"]["kernel"])[:, :10],
                               np.asarray(state1.params["head"]["kernel"]), rtol=1e-4,
                               atol=1e-6)
    for tree8, tree1 in [(state8.params, state1.params),
                         (state8.model_state, state1.model_state)]:
        flat1 = dict(jax.tree_util.tree_leaves_with_path(tree1))
        for path, a in jax.tree_util.tree_leaves_with_path(tree8):
            if sharding.path_str(path).startswith("head"):
                continue
            np.testing.assert_allclose(np.asarray(a), np.asarray(flat1[path]), rtol=1e-4,
                                       atol=1e-6, err_msg=sharding.path_str(path))


def test_earlier_stage_features_are_that_stage_pooled():
    model = ResNet(depth=18, num_classes=10, width=0.25)
    task = ClassificationTask(model, 10)
    images = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype(np.float32)
    variables = model.init(jax.random.key(0), images)
    _, named = model.apply(variables, images)
    out = task.forward(variables, {"image": images}, train=False)
    fns = task.predict_fns()
    for i in (2, 3, 4):
        got = fns[f"features_conv{i}"](out, {})["pre_logits"]
        np.testing.assert_allclose(got, np.asarray(named[f"conv{i}"]).mean(axis=(1, 2)),
                                   rtol=1e-6)
    np.testing.assert_allclose(fns["features"](out, {})["pre_logits"], named["pre_logits"])
