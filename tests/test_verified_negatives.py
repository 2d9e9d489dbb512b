"""The sigmoid loss's weight for unknown labels (neither positive nor verified negative),
and a training run on an Open Images-format fixture that uses it."""

import jax.numpy as jnp
import numpy as np
import pytest

from big_vision_like import losses, trainer
from big_vision_like import mesh as mesh_lib
from big_vision_like.tasks.classification import NEGATIVES_KEY
from configs import open_images_resnet101
from input_pipeline.run_data import RunData


def softplus64(x):
    return np.logaddexp(0.0, np.float64(x))


def weighted_xent_f64(logits, labels, negatives, unknown_weight, mask=None):
    """Float64 NumPy: -log p for positives, -log(1-p) otherwise; unknown labels
    (neither positive nor verified negative) times unknown_weight."""
    logits = np.float64(logits)
    per = np.where(labels > 0, softplus64(-logits), softplus64(logits))
    known = (labels > 0) | (negatives > 0)
    per = np.where(known, per, unknown_weight * per).sum(-1)
    return per.mean() if mask is None else per[mask].mean()


def test_unknown_weight_against_a_hand_computed_value():
    # One image, classes: a positive (logit 2), a verified negative (-1), an unknown (0.5),
    # and a class both positive and verified negative (3; raters disagree: positive).
    logits = np.array([[2.0, -1.0, 0.5, 3.0]], np.float32)
    labels = np.array([[1, 0, 0, 1]], np.float32)
    negatives = np.array([[0, 1, 0, 1]], np.float32)
    by_hand = (np.log1p(np.exp(-2.0)) + np.log1p(np.exp(-1.0))
               + 0.25 * np.log1p(np.exp(0.5)) + np.log1p(np.exp(-3.0)))
    got = losses.sigmoid_xent(logits, labels, negatives=negatives, unknown_weight=0.25)
    np.testing.assert_allclose(float(got), by_hand, rtol=1e-6)
    assert by_hand == pytest.approx(0.732296, abs=1e-6)  # 0.126928 + 0.313262 + 0.243519 + 0.048587


def test_unknown_weight_matches_float64_with_a_mask_and_default_is_unchanged():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 4, (16, 29)).astype(np.float32)
    labels = (rng.random((16, 29)) < 0.15).astype(np.float32)
    negatives = ((rng.random((16, 29)) < 0.3) & (labels == 0)).astype(np.float32)
    mask = rng.random(16) < 0.7
    for w in (0.0, 0.1, 2.0):
        got = losses.sigmoid_xent(logits, labels, mask, negatives=negatives, unknown_weight=w)
        np.testing.assert_allclose(got, weighted_xent_f64(logits, labels, negatives, w, mask),
                                   rtol=1e-5)
    plain = losses.sigmoid_xent(logits, labels, mask)
    np.testing.assert_allclose(plain, weighted_xent_f64(logits, labels, negatives, 1.0, mask),
                               rtol=1e-5)
    # The default weight leaves the loss exactly as it was, negatives or not.
    assert float(losses.sigmoid_xent(logits, labels, mask, negatives=negatives)) == float(plain)
    assert float(losses.sigmoid_xent(logits, labels, mask, negatives=negatives,
                                     unknown_weight=1.0)) == float(plain)


def task_for(mesh=None, **config_fields):
    c = open_images_resnet101.get_config("tiny")
    for k, v in config_fields.items():
        c[k] = v
    return trainer.build_task(c, mesh or mesh_lib.make_mesh(1, 8), 5)  # head padded to 8


def test_the_task_reads_loss_kw_and_needs_negatives_only_when_it_matters():
    rng = np.random.default_rng(1)
    raw = jnp.asarray(rng.normal(0, 2, (4, 8)), jnp.float32)
    labels = (rng.random((4, 5)) < 0.3).astype(np.float32)
    negatives = ((rng.random((4, 5)) < 0.4) & (labels == 0)).astype(np.float32)
    batch = {"labels": jnp.asarray(labels), NEGATIVES_KEY: jnp.asarray(negatives),
             "_mask": jnp.asarray([True, True, True, False])}
    mask = np.array([True, True, True, False])
    default = task_for()  # the config's unknown_weight=1.0
    assert default.batch_keys == ("image", "labels")
    value, _ = default.loss(default.outputs((raw, {})), batch)
    want = weighted_xent_f64(raw[:, :5], labels, negatives, 1.0, mask)
    np.testing.assert_allclose(value, want, rtol=1e-5)
    weighted = task_for(loss_kw=dict(unknown_weight=0.1))
    assert weighted.batch_keys == ("image", "labels", NEGATIVES_KEY)
    value, _ = weighted.loss(weighted.outputs((raw, {})), batch)
    np.testing.assert_allclose(value, weighted_xent_f64(raw[:, :5], labels, negatives, 0.1,
                                                        mask), rtol=1e-5)
    with pytest.raises(ValueError, match="needs 'negative_labels' in every batch"):
        weighted.loss(weighted.outputs((raw, {})), {k: v for k, v in batch.items()
                                                    if k != NEGATIVES_KEY})
    with pytest.raises(ValueError, match="the loss 'softmax_xent' takes no"):
        task_for(loss="softmax_xent", loss_kw=dict(unknown_weight=0.1))
    with pytest.raises(ValueError, match="unknown_weight=-1.0: give a number >= 0"):
        task_for(loss_kw=dict(unknown_weight=-1.0))


def test_weighted_loss_on_a_class_sharded_head_matches_float64():
    import jax
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    mesh = mesh_lib.make_mesh(2, 4)  # examples over 2 devices, the 8 head columns over 4
    task = task_for(mesh, loss_kw=dict(unknown_weight=0.3))
    rng = np.random.default_rng(3)
    raw = rng.normal(0, 2, (8, 8)).astype(np.float32)
    labels = (rng.random((8, 5)) < 0.3).astype(np.float32)
    negatives = ((rng.random((8, 5)) < 0.4) & (labels == 0)).astype(np.float32)
    batch = jax.device_put({"labels": labels, NEGATIVES_KEY: negatives},
                           mesh_lib.batch_sharding(mesh))
    logits = jax.device_put(raw, NamedSharding(mesh, P(mesh_lib.DATA, mesh_lib.MODEL)))
    value = jax.jit(lambda out, b: task.loss(task.outputs((out, {})), b)[0])(logits, batch)
    np.testing.assert_allclose(value, weighted_xent_f64(raw[:, :5], labels, negatives, 0.3),
                               rtol=1e-5)


def test_the_config_feeds_fixture_negatives_to_the_loss(tmp_path):
    """configs/open_images_resnet101.py:tiny on the Open Images-format fixture: real
    batches carry hierarchy-filled labels and verified negatives, and the task's loss
    on them matches float64. (A full 2-step trainer.train of this config passes too,
    but compiling ResNet-18 takes 30-40 s here, too long for the suite.)"""
    from input_pipeline.sources.registry import open_source
    from tests.test_open_images import EXPECTED, write_open_images

    data_dir = str(tmp_path / "tfds")
    open_source(open_images_resnet101.DATA, data_dir=data_dir,
                manual_dir=write_open_images(str(tmp_path / "manual")))
    c = open_images_resnet101.get_config("tiny")
    c.input.data.data_dir = data_dir
    c.loss_kw.unknown_weight = 0.1
    mesh = mesh_lib.make_mesh(8, 1)
    data = RunData(c, mesh)
    task = trainer.build_task(c, mesh, data.num_classes)
    with data.train_iterator(None) as it:
        batch = {k: np.asarray(v) for k, v in next(it).items()}
    trainer._check_batch(batch, task, (32, 32, 3), c.input.pp)
    names = data.source.metadata["display_names"]
    rows = {(frozenset(names[i] for i in np.flatnonzero(p)),
             frozenset(names[i] for i in np.flatnonzero(n)))
            for p, n in zip(batch["labels"], batch[NEGATIVES_KEY])}
    assert rows == {(frozenset(EXPECTED[i][1]), frozenset(EXPECTED[i][3]))  # both filled
                    for i in ("000002b66c9c498e", "000002b97e5471a0", "000002c707c9895e")}
    logits = np.random.default_rng(2).normal(0, 3, batch["labels"].shape).astype(np.float32)
    value, _ = task.loss(task.outputs((jnp.asarray(logits), {})), batch)
    np.testing.assert_allclose(value, weighted_xent_f64(logits, batch["labels"],
                                                        batch[NEGATIVES_KEY], 0.1), rtol=1e-5)
