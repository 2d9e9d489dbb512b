"""Faster R-CNN as a task: model outputs and targets, the loss against NumPy, the
checkpoint surgery, a sharded step against one device. The offline config runs
end to end (scratch, fine-tuned, frozen conv1-4; coco_ap) in the dense study's
test (tests/test_transfer_study.py)."""

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from big_vision_like import comm_report, init_from, sharding, train_step
from big_vision_like import mesh as mesh_lib
from big_vision_like.models.faster_rcnn import FasterRCNN
from big_vision_like.models.resnet import ResNet
from big_vision_like.tasks.detection import DETECTION_OUTPUTS, DetectionTask
from tests.helpers import train_steps_on

C = 3  # object classes
SIZE = 64


def tiny_rcnn(**kw) -> FasterRCNN:
    return FasterRCNN(**{**dict(
        depth=18, width=0.25, num_classes=C, anchor_base_size=32.0,
        anchor_scales=(0.5, 1.0, 2.0), rpn_channels=16, rpn_batch=32, rpn_pre_nms=100,
        num_proposals=16, box_batch=8, max_per_class=10, max_detections=10), **kw})


def _batch(n: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    """Random images with 1-3 boxes each, padded to 4; every third image fills only
    the left half of the input (`image_hw`), its boxes there."""
    rng = np.random.default_rng(seed)
    boxes = np.zeros((n, 4, 4), np.float32)
    valid = np.zeros((n, 4), bool)
    hw = np.full((n, 2), SIZE, np.int32)
    hw[::3] = (SIZE, SIZE // 2)
    for i in range(n):
        for j in range(rng.integers(1, 4)):
            y, x = rng.uniform(0, 0.6, 2)
            h, w = rng.uniform(0.2, 0.4, 2)
            box = np.array([y, x, y + h, x + w]) * np.tile(hw[i] / SIZE, 2)
            boxes[i, j], valid[i, j] = box, True
    return {"image": rng.normal(size=(n, SIZE, SIZE, 3)).astype(np.float32),
            "image_hw": hw, "boxes": boxes,
            "classes": rng.integers(0, C, (n, 4)).astype(np.int32), "box_valid": valid}


def test_train_outputs_sample_the_asked_minibatches_and_eval_gives_detections():
    model, batch = tiny_rcnn(add_gt_proposals=True), _batch(4)
    variables = jax.jit(model.init)(jax.random.key(0), batch["image"][:1],
                                    batch["image_hw"][:1])
    out, _ = jax.jit(lambda v, b: model.apply(
        v, b["image"], b["image_hw"], b["boxes"], b["classes"], b["box_valid"], train=True,
        rngs={"dropout": jax.random.key(1)}, mutable=["batch_stats"]))(variables, batch)
    at, rt = out["rpn_targets"], out["roi_targets"]
    num_anchors = (SIZE // 16) ** 2 * 9
    assert out["rpn_objectness"].shape == (4, num_anchors)
    sampled = np.asarray(at["weights"]).sum(-1)
    positives = np.asarray(at["box_weights"]).sum(-1)
    assert np.all(sampled <= 32) and np.all(positives <= 16) and np.all(positives >= 1)
    # Anchors whose centre lies in an image's padding are never sampled.
    centres_x = (np.arange(num_anchors) // 9 % (SIZE // 16) + 0.5) * 16
    assert not np.asarray(at["weights"])[0][centres_x >= SIZE // 2].any()
    assert out["class_logits"].shape == (4, 8, C + 1)
    assert out["box_deltas"].shape == (4, 8, C, 4)
    # Ground truth joins the proposals: every image has a positive roi of a real class.
    classes, weights = np.asarray(rt["classes"]), np.asarray(rt["weights"])
    assert np.all(((classes > 0) & (weights > 0)).sum(-1) >= 1)
    assert np.all(weights.sum(-1) <= 8)
    for i in range(4):
        assert set(classes[i][classes[i] > 0] - 1) <= set(
            batch["classes"][i][batch["box_valid"][i]])

    pred = jax.jit(lambda v, b: model.apply(v, b["image"], b["image_hw"]))(variables, batch)
    assert pred["detection_boxes"].shape == (4, 10, 4)
    valid = np.asarray(pred["detection_valid"])
    boxes = np.asarray(pred["detection_boxes"])[valid]
    assert valid.any() and np.all((boxes >= 0) & (boxes <= 1))
    assert np.all(np.asarray(pred["detection_classes"])[valid] < C)


def test_loss_matches_numpy_on_given_outputs_and_targets():
    rng = np.random.default_rng(0)
    b, n, s = 2, 12, 5
    out = {
        "rpn_objectness": rng.normal(size=(b, n)), "rpn_deltas": rng.normal(size=(b, n, 4)),
        "class_logits": rng.normal(size=(b, s, C + 1)) * 2,
        "box_deltas": rng.normal(size=(b, s, C, 4)) * 2,
        "rpn_targets": {"objectness": (rng.random((b, n)) < 0.3).astype(np.float32),
                        "weights": (rng.random((b, n)) < 0.7).astype(np.float32),
                        "box_targets": rng.normal(size=(b, n, 4)),
                        "box_weights": (rng.random((b, n)) < 0.3).astype(np.float32)},
        "roi_targets": {"classes": rng.integers(0, C + 1, (b, s)),
                        "weights": (rng.random((b, s)) < 0.8).astype(np.float32),
                        "box_targets": rng.normal(size=(b, s, 4))}}
    mask = np.array([True, False])
    batch = {"image": np.zeros((b, 8, 8, 3)), "_mask": mask}

    def huber(x):
        return np.where(np.abs(x) < 1, 0.5 * x ** 2, np.abs(x) - 0.5).sum(-1)

    at, rt = out["rpn_targets"], out["roi_targets"]
    z, y = out["rpn_objectness"], at["objectness"]
    obj = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
    nw = np.maximum(at["weights"].sum(-1), 1)
    logits = out["class_logits"]
    xent = np.log(np.exp(logits).sum(-1)) - np.take_along_axis(
        logits, rt["classes"][..., None], -1)[..., 0]
    own = np.take_along_axis(out["box_deltas"], np.maximum(rt["classes"] - 1, 0)[
        ..., None, None], 2)[:, :, 0]
    pos = (rt["classes"] > 0) * rt["weights"]
    rw = np.maximum(rt["weights"].sum(-1), 1)
    per_image = ((obj * at["weights"]).sum(-1) / nw
                 + 2 * (huber(out["rpn_deltas"] - at["box_targets"]) * at["box_weights"]
                        ).sum(-1) / nw
                 + (xent * rt["weights"]).sum(-1) / rw
                 + 2 * (huber(own - rt["box_targets"]) * pos).sum(-1) / rw)
    task = DetectionTask(tiny_rcnn())
    value, aux = task.loss(jax.tree.map(lambda a: jnp.asarray(a, jnp.float32)
                                        if np.asarray(a).dtype.kind == "f" else jnp.asarray(a),
                                        out), batch)
    assert float(value) == pytest.approx(per_image[0], rel=1e-5)
    assert set(aux) >= {"rpn_objectness_loss", "rpn_box_loss", "box_classes_loss",
                        "box_refinement_loss"}
    with pytest.raises(ValueError, match="unknown terms .'rpn_boxes'"):
        DetectionTask(tiny_rcnn(), loss_weights={"rpn_boxes": 1.0})


def test_a_classification_checkpoint_loads_the_body():
    images, hw = jnp.zeros((1, SIZE, SIZE, 3)), jnp.array([[SIZE, SIZE]])
    resnet = jax.eval_shape(lambda: ResNet(depth=18, width=0.25, num_classes=10).init(
        jax.random.key(0), images))
    rng = np.random.default_rng(0)
    resnet = jax.tree.map(lambda s: rng.normal(size=s.shape).astype(s.dtype), resnet)
    rcnn = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), jax.eval_shape(
        lambda: tiny_rcnn().init(jax.random.key(0), images, hw)))
    flat = {sharding.path_str(p): np.asarray(v)
            for p, v in jax.tree_util.tree_leaves_with_path(resnet)}
    merged, report = init_from.merge(rcnn, flat, skip="^(head|rpn_|box_classifier_)")
    assert not report.missing and not report.unused
    assert report.skipped and all(
        "/rpn_" in p or "/box_classifier_" in p for p in report.skipped)
    assert len(report.loaded) == len(flat) - 2  # all but head/kernel, head/bias
    np.testing.assert_array_equal(merged["params"]["conv5_block2"]["conv2"]["kernel"],
                                  resnet["params"]["conv5_block2"]["conv2"]["kernel"])


def _two_steps(mesh, frozen=None):
    task = DetectionTask(tiny_rcnn(frozen=frozen))
    tx = optax.sgd(1e-2, momentum=0.9)
    return train_steps_on(mesh, task, tx, _batch(8), image_shape=(SIZE, SIZE, 3))


@pytest.mark.slow
def test_two_by_four_mesh_step_matches_one_device():
    state1, metrics1 = _two_steps(mesh_lib.make_mesh(1, 1, devices=jax.devices()[:1]))
    state8, metrics8 = _two_steps(mesh_lib.make_mesh(2, 4))
    for k in ("train/loss", "train/rpn_positives", "train/roi_positives"):
        np.testing.assert_allclose(metrics8[k], metrics1[k], rtol=1e-4, err_msg=k)
    assert float(metrics1["train/roi_positives"]) > 0
    for tree8, tree1 in [(state8.params, state1.params),
                         (state8.model_state, state1.model_state)]:
        flat1 = dict(jax.tree_util.tree_leaves_with_path(tree1))
        for path, a in jax.tree_util.tree_leaves_with_path(tree8):
            np.testing.assert_allclose(np.asarray(a), np.asarray(flat1[path]), rtol=1e-4,
                                       atol=1e-5, err_msg=sharding.path_str(path))


def test_nms_loops_run_per_device_without_collectives():
    """Formerly the RPN's NMS, vmapped over a batch split on `data`, did an
    all-reduce at every pass of its loop (~58 per call at 6,000 boxes)."""
    mesh = mesh_lib.make_mesh(8, 1)
    compiled, _, _ = train_step.compile_abstract_step(
        DetectionTask(tiny_rcnn()), optax.sgd(1e-2), mesh, sharding.HEAD_SHARDED_RULES,
        {k: (v.shape, v.dtype) for k, v in _batch(16).items()})
    hlo = compiled.as_text()
    assert "while" in hlo and comm_report.collectives(hlo, 8)["all-reduce"]["count"] > 0
    assert comm_report.in_loops(hlo, 8) == {}


@pytest.mark.slow
def test_eval_detections_per_device_shard_equal_the_vmapped_ones():
    """The same sharded program but for the NMS (one all-reduce per pass when
    vmapped): the detections must not change."""
    task, batch, mesh = DetectionTask(tiny_rcnn()), _batch(16), mesh_lib.make_mesh(8, 1)
    variables = task.init(jax.random.key(0), (SIZE, SIZE, 3))
    batch = jax.device_put(batch, mesh_lib.batch_sharding(mesh))

    def predict(v, b, per_shard: bool):
        with mesh_lib.tracing_on(mesh) if per_shard else contextlib.nullcontext():
            return task.predict_fns()["predict"](task.forward(v, b, train=False), b)

    vmapped, per_shard = (jax.jit(predict, static_argnums=2)(variables, batch, p)
                          for p in (False, True))
    assert np.asarray(vmapped["detection_valid"]).sum() > 0
    for k in DETECTION_OUTPUTS:
        np.testing.assert_array_equal(np.asarray(per_shard[k]), np.asarray(vmapped[k]), k)
