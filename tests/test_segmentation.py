"""Semantic segmentation: DeepLab-ASPP-L, its per-pixel loss, mean IoU, the sharded
step and a run of the offline config."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import sklearn.metrics

from big_vision_like import init_from, sharding, trainer
from big_vision_like import mesh as mesh_lib
from big_vision_like.config import schema
from big_vision_like.models.deeplab import DeepLab, scaled_rates, upsample_align_corners
from big_vision_like.models.resnet import ResNet
from big_vision_like.tasks.segmentation import IGNORE_LABEL, SegmentationTask, pixel_xent
from configs.transfer import deeplab_synthetic
from evaluators import miou
from evaluators.common import EvalContext
from input_pipeline.keys import MASK_KEY
from tests.helpers import data_dir_of, train_steps_on

C = 5


def tiny_deeplab(output_stride=8, **kw):
    return DeepLab(num_classes=C, depth=18, width=0.25, output_stride=output_stride, **kw)


# --- mean IoU --------------------------------------------------------------------------

def _random_eval_batches(rng, mesh, num_batches=3, batch=8, size=12):
    """Batches of (logits in 'image', labels) with ignore pixels; the last batch is
    half padding whose labels are real class ids (counted if the mask were ignored)."""
    batches = []
    for i in range(num_batches):
        labels = rng.integers(0, C, (batch, size, size, 1))
        labels[rng.random(labels.shape) < 0.2] = IGNORE_LABEL
        mask = np.ones(batch, bool)
        if i == num_batches - 1:
            mask[batch // 2:] = False
        logits = rng.normal(size=(batch, size, size, C)).astype(np.float32)
        # Bias the predictions towards the truth, so every IoU is far from 0.
        logits += 2.0 * np.eye(C)[np.minimum(labels[..., 0], C - 1)]
        batches.append({"image": logits, "segmentation": labels.astype(np.uint8),
                        MASK_KEY: mask})
    return batches, [jax.device_put(b, mesh_lib.batch_sharding(mesh)) for b in batches]


def _evaluator(mesh, device_batches, **cfg):
    ctx = EvalContext(mesh=mesh, predict_fns={"predict": lambda v, b: {"logits": b["image"]}},
                      batch_loss=None, eval_batches=lambda *a: iter(device_batches),
                      batch_size=8, dataset_metadata=lambda d: {"class_names": ["x"] * 99})
    config = schema.evaluator("test", dict(type="miou", data={}, pp="", **cfg))
    return miou.MeanIoUEvaluator(config, ctx)


def test_miou_matches_sklearn_on_a_padded_pass_with_ignored_pixels(monkeypatch):
    mesh = mesh_lib.make_mesh(2, 4)
    host, device = _random_eval_batches(np.random.default_rng(0), mesh)
    true = np.concatenate([b["segmentation"][b[MASK_KEY]][..., 0].ravel() for b in host])
    pred = np.concatenate([b["image"][b[MASK_KEY]].argmax(-1).ravel() for b in host])
    keep = true != IGNORE_LABEL
    true, pred = true[keep], pred[keep]
    expected = sklearn.metrics.confusion_matrix(true, pred, labels=range(C))

    names = ("background", "cat", "dog", "sofa", "tv monitor")
    evaluator = _evaluator(mesh, device, class_names=names)
    np.testing.assert_array_equal(evaluator.confusion(None), expected)
    got = dict(evaluator.run(None))
    iou = sklearn.metrics.jaccard_score(true, pred, labels=range(C), average=None)
    np.testing.assert_allclose([got[f"iou/{n.replace(' ', '_')}"] for n in names], iou)
    assert got["miou"] == pytest.approx(iou.mean())
    assert got["pixel_accuracy"] == pytest.approx(sklearn.metrics.accuracy_score(true, pred))

    # Counts moved to the host whenever int32 could overflow: the same matrix.
    monkeypatch.setattr(miou, "_INT32_MAX", 8 * 12 * 12 + 1)
    np.testing.assert_array_equal(_evaluator(mesh, device).confusion(None), expected)


def test_miou_names_classes_by_id_when_the_metadata_does_not_fit_and_rejects_bad_labels():
    mesh = mesh_lib.make_mesh(8, 1)
    _, device = _random_eval_batches(np.random.default_rng(1), mesh, num_batches=1)
    got = dict(_evaluator(mesh, device).run(None))  # 99 metadata names for 5 classes
    assert {k for k in got if k.startswith("iou/")} == {f"iou/{i}" for i in range(C)}

    host, _ = _random_eval_batches(np.random.default_rng(1), mesh, num_batches=1)
    host[0]["segmentation"][0, 0, 0, 0] = C  # a class id the model does not have
    bad = [jax.device_put(host[0], mesh_lib.batch_sharding(mesh))]
    with pytest.raises(ValueError, match="1 labelled pixels have a label outside"):
        _evaluator(mesh, bad).confusion(None)


# --- the model -------------------------------------------------------------------------

@pytest.mark.parametrize("output_stride", [8, 16])
def test_atrous_body_and_aspp_shapes(output_stride):
    model = tiny_deeplab(output_stride)
    images = jnp.zeros((2, 65, 64, 3))
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), images))
    logits, named = jax.eval_shape(lambda v: model.apply(v, images), variables)
    grid = (-(-65 // output_stride), 64 // output_stride)  # SAME padding rounds up
    assert named["conv5"].shape[1:3] == grid
    assert named["conv4"].shape[1:3] == grid  # stride 16 at conv4 either way
    assert named["conv3"].shape[1:3] == (9, 8)
    assert named["aspp_logits"].shape == (2, *grid, C)
    assert logits.shape == (2, 65, 64, C) and logits.dtype == jnp.float32
    assert scaled_rates((6, 12, 18, 24), output_stride) == (
        (6, 12, 18, 24) if output_stride == 8 else (3, 6, 9, 12))
    assert sorted(variables["params"]["aspp"]) == ["rate12", "rate18", "rate24", "rate6"] \
        if output_stride == 8 else ["rate12", "rate3", "rate6", "rate9"]


def test_upsampling_aligns_corners_as_tensorflow_does():
    tf = pytest.importorskip("tensorflow")
    x = np.random.default_rng(0).normal(size=(2, 9, 5, 3)).astype(np.float32)
    expected = tf.compat.v1.image.resize_bilinear(x, (65, 33), align_corners=True).numpy()
    np.testing.assert_allclose(upsample_align_corners(jnp.asarray(x), (65, 33)), expected,
                               rtol=1e-5, atol=1e-5)


def test_a_classification_checkpoint_loads_the_body():
    # Shapes suffice (nothing is run): random checkpoint values, a zero model.
    images = jnp.zeros((1, 32, 32, 3))
    shapes = lambda m: jax.eval_shape(lambda: m.init(jax.random.key(0), images))
    rng = np.random.default_rng(0)
    resnet = jax.tree.map(lambda s: rng.normal(size=s.shape).astype(s.dtype),
                          shapes(ResNet(depth=18, width=0.25, num_classes=10)))
    deeplab = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes(tiny_deeplab()))
    flat = {sharding.path_str(p): np.asarray(v)
            for p, v in jax.tree_util.tree_leaves_with_path(resnet)}
    merged, report = init_from.merge(deeplab, flat, skip="^(head|aspp)/")
    assert not report.missing and not report.unused
    assert report.skipped and all("/aspp/" in p for p in report.skipped)
    assert len(report.loaded) == len(flat) - 2  # all but head/kernel, head/bias
    np.testing.assert_array_equal(merged["params"]["conv4_block2"]["conv2"]["kernel"],
                                  resnet["params"]["conv4_block2"]["conv2"]["kernel"])
    np.testing.assert_array_equal(merged["batch_stats"]["conv1_bn"]["mean"],
                                  resnet["batch_stats"]["conv1_bn"]["mean"])


# --- the loss --------------------------------------------------------------------------

def test_loss_averages_over_labelled_pixels_of_real_examples():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 6, 7, C)) * 3
    labels = rng.integers(0, C, (3, 6, 7, 1))
    labels[rng.random(labels.shape) < 0.3] = IGNORE_LABEL
    mask = np.array([True, True, False])
    lse = np.log(np.exp(logits).sum(-1))
    valid = (labels[..., 0] != IGNORE_LABEL) & mask[:, None, None]
    picked = np.take_along_axis(logits, np.where(valid, labels[..., 0], 0)[..., None],
                                -1)[..., 0]
    expected = (lse - picked)[valid].mean()

    value, count = pixel_xent(jnp.asarray(logits, jnp.float32), labels.astype(np.uint8),
                              mask)
    assert float(value) == pytest.approx(expected, rel=1e-5)
    assert int(count) == valid.sum()
    grad = jax.jit(jax.grad(lambda z: pixel_xent(z, labels, mask)[0]))(
        jnp.asarray(logits, jnp.float32))
    assert np.all(np.asarray(grad)[~valid] == 0) and np.abs(np.asarray(grad)[valid]).sum() > 0


# --- the sharded train step ------------------------------------------------------------

def _two_steps(mesh):
    task = SegmentationTask(tiny_deeplab(), C)
    tx = optax.chain(optax.add_decayed_weights(5e-4), optax.sgd(1e-2, momentum=0.9))
    rng = np.random.default_rng(0)
    labels = rng.integers(0, C, (8, 32, 32, 1))
    labels[rng.random(labels.shape) < 0.2] = IGNORE_LABEL
    batch = {"image": rng.normal(size=(8, 32, 32, 3)).astype(np.float32),
             "segmentation": labels.astype(np.uint8)}
    return train_steps_on(mesh, task, tx, batch)


@pytest.mark.slow
def test_two_by_four_mesh_step_matches_one_device():
    state1, metrics1 = _two_steps(mesh_lib.make_mesh(1, 1, devices=jax.devices()[:1]))
    state8, metrics8 = _two_steps(mesh_lib.make_mesh(2, 4))
    np.testing.assert_allclose(metrics8["train/loss"], metrics1["train/loss"], rtol=1e-4)
    assert float(metrics8["train/labelled_pixels"]) == float(
        metrics1["train/labelled_pixels"])
    for tree8, tree1 in [(state8.params, state1.params),
                         (state8.model_state, state1.model_state)]:
        flat1 = dict(jax.tree_util.tree_leaves_with_path(tree1))
        for path, a in jax.tree_util.tree_leaves_with_path(tree8):
            np.testing.assert_allclose(np.asarray(a), np.asarray(flat1[path]), rtol=1e-4,
                                       atol=1e-6, err_msg=sharding.path_str(path))


# --- the offline config, end to end ----------------------------------------------------

@pytest.mark.slow
def test_tiny_config_fine_tunes_a_pretrained_body_and_reports_miou(
        tiny_source, pretrained_tiny, tmp_path):
    c = deeplab_synthetic.get_config("tiny")
    c.input.data.data_dir = data_dir_of(tiny_source)
    c.init_from.checkpoint = os.path.join(pretrained_tiny[0], "checkpoints", "8")
    trainer.train(c, str(tmp_path))
    got = trainer.summary(str(tmp_path))
    assert got["step"] == c.total_steps
    assert 0.0 <= got["test/miou"] <= 1.0 and 0.0 < got["test/pixel_accuracy"] <= 1.0
    assert {k for k in got if k.startswith("test/iou/")} == {
        f"test/iou/{name}" for name in deeplab_synthetic.CLASS_NAMES}
    assert got["test/iou/background"] > 0  # every test image has background pixels
    report = (tmp_path / "init_from_report.txt").read_text()
    fresh = [line for line in report.splitlines() if line.startswith("kept fresh")]
    assert fresh and all("/aspp/" in line for line in fresh), report
    assert report.splitlines()[1].endswith(", unused 0"), report
