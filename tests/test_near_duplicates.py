"""Near-duplicate removal (Appendix A): the sharded blocked search against a float64
brute force, planted near-duplicates found with a checkpoint's features, and the
evaluators' `_dedup` metrics against sklearn on the remaining examples."""

import io
import os
from functools import partial

import jax
import numpy as np
import pytest
import sklearn.metrics
from PIL import Image, ImageEnhance

from big_vision_like import checkpointing, trainer
from big_vision_like import mesh as mesh_lib
from big_vision_like.config import schema
from big_vision_like.tasks.segmentation import IGNORE_LABEL
from big_vision_like.tools import near_duplicates as nd
from big_vision_like.tools.topk_search import blocked_topk, l2_normalise, pairs_above
from evaluators import miou
from evaluators.classification import ClassificationEvaluator
from evaluators.common import EvalContext
from input_pipeline.keys import MASK_KEY
from tests.helpers import tiny_config


def brute_force(queries, train, k):
    sims = queries.astype(np.float64) @ train.astype(np.float64).T
    index = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sims, index, axis=1), index


# --- the search ------------------------------------------------------------------------

def test_sharded_blocked_topk_equals_float64_brute_force():
    assert jax.device_count() == 8
    rng = np.random.default_rng(0)
    train = l2_normalise(rng.normal(size=(1003, 16)))  # not a multiple of 8 x 2 x 32
    queries = l2_normalise(rng.normal(size=(37, 16)))
    queries[:3] = train[[5, 600, 1002]]  # exact duplicates, in three different chunks
    want_sims, want_index = brute_force(queries, train, 5)
    for kwargs in (dict(block_size=32, blocks_per_device=2, query_block=20),
                   dict(block_size=7, blocks_per_device=1, query_block=64)):
        sims, index = blocked_topk(queries, train, 5, **kwargs)
        np.testing.assert_array_equal(index, want_index)
        np.testing.assert_allclose(sims, want_sims, atol=1e-5)
    # Rows read from "disk" chunk by chunk give the same answer.
    sims, index = blocked_topk(queries, lambda a, b: train[a:b], 5, num_train=len(train),
                               block_size=16, blocks_per_device=3)
    np.testing.assert_array_equal(index, want_index)
    assert {p[:2] for p in pairs_above(sims, index, 0.99999)} == {(0, 5), (1, 600), (2, 1002)}
    # Fewer training rows than k: the rest are marked empty.
    sims, index = blocked_topk(queries[:2], train[:3], 5, block_size=4)
    np.testing.assert_array_equal(index[:, 3:], -1)
    assert np.isneginf(sims[:, 3:]).all()
    np.testing.assert_array_equal(index[:, :3], brute_force(queries[:2], train[:3], 3)[1])


# --- planted near-duplicates -----------------------------------------------------------

def rendered_images(rng, n, size):
    """Random compositions: a colour gradient, coloured gratings, ellipses, boxes."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = []
    for _ in range(n):
        img = rng.uniform(0, 1, 3) + (yy[..., None] * rng.uniform(-1, 1, 3)
                                      + xx[..., None] * rng.uniform(-1, 1, 3))
        for _ in range(int(rng.integers(1, 4))):
            th, freq = rng.uniform(0, np.pi), rng.uniform(2, 12)
            wave = np.sin(2 * np.pi * freq * (np.cos(th) * xx + np.sin(th) * yy)
                          + rng.uniform(0, 2 * np.pi))
            img = img + 0.3 * wave[..., None] * rng.uniform(-1, 1, 3)
        for _ in range(int(rng.integers(1, 5))):
            (cy, cx), (ry, rx) = rng.uniform(0, 1, 2), rng.uniform(0.05, 0.35, 2)
            if rng.random() < 0.5:
                inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
            else:
                inside = (np.abs(yy - cy) <= ry) & (np.abs(xx - cx) <= rx)
            img[inside] = rng.uniform(0, 1, 3)
        out.append(np.clip(img / max(1.0, img.max()) * 255, 0, 255).astype(np.uint8))
    return np.stack(out)


def near_duplicate(img, rng):
    """A crop (80-95%), a rescale (down to 50-80% and back), colour jitter (+-20%
    brightness, contrast, saturation) and a JPEG re-encode (quality 30-70), all at once."""
    size = img.shape[0]
    side = int(size * rng.uniform(0.8, 0.95))
    y, x = rng.integers(0, size - side + 1, 2)
    im = Image.fromarray(img).crop((x, y, x + side, y + side))
    im = im.resize((size, size), Image.BILINEAR)
    small = int(size * rng.uniform(0.5, 0.8))
    im = im.resize((small, small), Image.BILINEAR).resize((size, size), Image.BILINEAR)
    for enhance in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        im = enhance(im).enhance(rng.uniform(0.8, 1.2))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=int(rng.integers(30, 71)))
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def random_init_checkpoint(workdir, size=64):
    """A ResNet-18 (width 0.25) step folder with its config.json, as a run writes them."""
    config = tiny_config("unused", total_steps=0)
    config.input.image_shape = (size, size, 3)
    config.model.num_classes = 10
    task = trainer.build_task(config, mesh_lib.make_mesh(-1, 1), 10)
    variables = dict(jax.jit(partial(task.init, image_shape=(size, size, 3)))(jax.random.key(0)))
    ckpt = checkpointing.Checkpointer(os.path.join(workdir, "checkpoints"),
                                      asynchronous=False)
    # The layout a run saves (TrainState's params and model_state), without an optimizer.
    ckpt.save(1, {"params": variables.pop("params"), "model_state": variables})
    ckpt.close()
    trainer.write_config(config, workdir)
    return os.path.join(workdir, "checkpoints", "1")


def recall_at_clean_rate(eval_x, train_x, num_clean, center, rate=0.01):
    """(threshold flagging `rate` of the clean pairs, recall of the planted pairs: eval
    image i and train row num_clean + i)."""
    a, b = nd.normalise(eval_x, train_x, center)
    sims = a.astype(np.float64) @ b.astype(np.float64).T
    threshold = float(np.quantile(sims[:, :num_clean], 1 - rate))
    planted = sims[np.arange(len(a)), num_clean + np.arange(len(a))]
    return threshold, float(np.mean(planted >= threshold))


@pytest.mark.slow
def test_planted_near_duplicates_are_found_with_a_checkpoints_features(tmp_path, capsys):
    rng = np.random.default_rng(0)
    num_eval, num_clean = 100, 1000
    evals = rendered_images(rng, num_eval, 64)
    train = np.concatenate([rendered_images(rng, num_clean, 64),
                            np.stack([near_duplicate(e, rng) for e in evals])])
    checkpoint = random_init_checkpoint(str(tmp_path / "run"))
    results = {}
    for feature, center in (("pre_logits", False), ("conv1_grid4", True)):
        model = nd.load_feature_model(checkpoint, feature)
        as_input = lambda x: x.astype(np.float32) / 127.5 - 1  # value_range(-1, 1)
        eval_x, train_x = model.embed(as_input(evals)), model.embed(as_input(train))
        results[feature] = (eval_x, train_x, center,
                            *recall_at_clean_rate(eval_x, train_x, num_clean, center))
    with capsys.disabled():
        for feature, (*_, center, threshold, recall) in results.items():
            print(f"\nplanted near-duplicates, random-init ResNet-18/0.25 at 64 px, {feature} "
                  f"center={center}: threshold {threshold:.4f} flags 1% of clean pairs, "
                  f"recall {recall:.3f}")

    # The global pool of a random-init body keeps colour statistics, not layout; the
    # stem's maps pooled to 4x4 keep both and find the planted copies.
    eval_x, train_x, center, threshold, recall = results["conv1_grid4"]
    assert recall >= 0.95
    # The tool's search at that threshold: the planted pairs among its top-5, and few
    # clean pairs flagged.
    pairs, _, _ = nd.find_near_duplicates(eval_x, train_x, threshold, k=5, center=center,
                                          block_size=64)
    planted = {(e, num_clean + e) for e in range(num_eval)}
    found = {p[:2] for p in pairs}
    assert len(found & planted) >= 0.95 * num_eval
    assert len(found - planted) <= 0.01 * num_eval * num_clean

    records = nd.write_pairs(str(tmp_path / "out"), pairs, np.arange(num_eval) + 1000,
                             np.arange(len(train)))
    ids = np.loadtxt(tmp_path / "out" / nd.IDS_FILE, dtype=np.int64, ndmin=1)
    np.testing.assert_array_equal(ids, sorted({r["eval_id"] for r in records}))
    sheet = str(tmp_path / "out" / "sheet.png")
    nd.contact_sheet(sheet, [(evals[e], train[t], f"{s:.3f}") for e, t, s in pairs[:5]],
                     tile=64, columns=2)
    assert Image.open(sheet).size == (2 * (2 * 64 + 150), 3 * 64)
    # The first cell shows the pair's eval image, then its train image.
    e, t, _ = pairs[0]
    cell = np.asarray(Image.open(sheet).convert("RGB"))[:64, :128].astype(float)
    assert np.abs(cell[:, :64] - evals[e]).mean() < 2
    assert np.abs(cell[:, 64:] - train[t]).mean() < 2


# --- _dedup metrics --------------------------------------------------------------------

def fake_context(batches, batch_size=8):
    return EvalContext(mesh=mesh_lib.make_mesh(8, 1),
                       predict_fns={"predict": lambda v, b: {"logits": b["image"]}},
                       batch_loss=None, eval_batches=lambda *a: iter(batches),
                       batch_size=batch_size, dataset_metadata=lambda d: {})


def test_classification_dedup_metrics_equal_sklearn_on_the_remaining_examples(tmp_path):
    rng = np.random.default_rng(0)
    n, classes = 45, 7
    logits = rng.normal(size=(n, classes))
    labels = rng.integers(0, classes, n)
    ids = rng.permutation(1000)[:n]
    batches = []
    for start in range(0, 48, 16):  # the last batch is padded
        stop = min(start + 16, n)
        pad = 16 - (stop - start)
        batches.append({"image": np.pad(logits[start:stop], ((0, pad), (0, 0))),
                        "labels": np.pad(np.eye(classes)[labels[start:stop]], ((0, pad), (0, 0))),
                        "image_id": np.pad(ids[start:stop], (0, pad)),
                        MASK_KEY: np.arange(16) < stop - start})
    excluded = ids[[0, 3, 17, 40]]
    (tmp_path / "ids.txt").write_text("".join(f"{i}\n" for i in [*excluded, 5000]))
    config = schema.evaluator("test", dict(type="classification", data={}, pp="",
                                           exclude_ids=str(tmp_path / "ids.txt")))
    got = dict(ClassificationEvaluator(config, fake_context(batches)).run(None))

    keep = ~np.isin(ids, excluded)
    labels_all = np.arange(classes)
    for suffix, m in (("", np.ones(n, bool)), ("_dedup", keep)):
        assert got[f"prec@1{suffix}"] == pytest.approx(
            sklearn.metrics.top_k_accuracy_score(labels[m], logits[m], k=1, labels=labels_all))
        assert got[f"prec@5{suffix}"] == pytest.approx(
            sklearn.metrics.top_k_accuracy_score(labels[m], logits[m], k=5, labels=labels_all))
        probs = np.exp(logits[m]) / np.exp(logits[m]).sum(1, keepdims=True)
        assert got[f"loss{suffix}"] == pytest.approx(
            sklearn.metrics.log_loss(labels[m], probs, labels=labels_all))
    assert got["excluded_examples"] == 4
    assert got["prec@1_dedup"] != got["prec@1"] or got["loss_dedup"] != got["loss"]

    # Without image ids in the batches, excluding is an error naming the fix.
    for b in batches:
        del b["image_id"]
    with pytest.raises(KeyError, match="image_id"):
        dict(ClassificationEvaluator(config, fake_context(batches)).run(None))


def test_miou_dedup_equals_sklearn_on_the_remaining_images():
    rng = np.random.default_rng(1)
    mesh = mesh_lib.make_mesh(2, 4)
    classes, size = 4, 6
    host = []
    for i in range(3):
        labels = rng.integers(0, classes, (8, size, size, 1))
        labels[rng.random(labels.shape) < 0.2] = IGNORE_LABEL
        logits = rng.normal(size=(8, size, size, classes)).astype(np.float32)
        logits += 1.5 * np.eye(classes)[np.minimum(labels[..., 0], classes - 1)]
        host.append({"image": logits, "segmentation": labels.astype(np.uint8),
                     "image_id": np.arange(8 * i, 8 * i + 8), MASK_KEY: np.arange(8) < 6})
    device = [jax.device_put(b, mesh_lib.batch_sharding(mesh)) for b in host]
    excluded = [1, 2, 9, 22, 7]  # 7 and 22 are padding: excluded or not, never counted
    ctx = EvalContext(mesh=mesh, predict_fns={"predict": lambda v, b: {"logits": b["image"]}},
                      batch_loss=None, eval_batches=lambda *a: iter(device), batch_size=8,
                      dataset_metadata=lambda d: {})
    config = schema.evaluator("test", dict(type="miou", data={}, pp="", exclude_ids=excluded))
    got = dict(miou.MeanIoUEvaluator(config, ctx).run(None))

    for suffix, drop in (("", []), ("_dedup", excluded)):
        keep = [b[MASK_KEY] & ~np.isin(b["image_id"], drop) for b in host]
        true = np.concatenate([b["segmentation"][k][..., 0].ravel() for b, k in zip(host, keep)])
        pred = np.concatenate([b["image"][k].argmax(-1).ravel() for b, k in zip(host, keep)])
        labelled = true != IGNORE_LABEL
        iou = sklearn.metrics.jaccard_score(true[labelled], pred[labelled],
                                            labels=range(classes), average=None)
        assert got[f"miou{suffix}"] == pytest.approx(iou.mean())
        np.testing.assert_allclose([got[f"iou{suffix}/{c}"] for c in range(classes)], iou)
        assert got[f"pixel_accuracy{suffix}"] == pytest.approx(
            sklearn.metrics.accuracy_score(true[labelled], pred[labelled]))
    assert got["miou_dedup"] != got["miou"]


def test_box_ap_dedup_equals_pycocotools_and_voc_eval_on_the_remaining_images():
    from evaluators.coco_ap import METRICS, CocoApEvaluator
    from evaluators.voc_ap import ImageObjects, VocApEvaluator, voc_ap
    from tests.test_detection_ap import (
        batches_of,
        pycocotools_stats,
        random_coco_images,
    )

    images = random_coco_images(3)
    rng = np.random.default_rng(2)
    difficult = [rng.random(len(im.gt_classes)) < .25 for im in images]
    batches = batches_of(images, [(480, 640)] * len(images), difficult)  # ids 100 + i
    outputs = ("detection_boxes", "detection_scores", "detection_classes",
               "detection_valid")
    ctx = EvalContext(mesh=None, batch_loss=None, batch_size=3,
                      predict_fns={"predict": lambda v, b: {k: b[k] for k in outputs}},
                      eval_batches=lambda *a: iter(batches))
    drop = [1, 4]
    kept = [im for i, im in enumerate(images) if i not in drop]
    cfg = dict(data={}, pp="", exclude_ids=[100 + i for i in drop])

    got = dict(CocoApEvaluator(schema.evaluator("test", {"type": "coco_ap", **cfg}), ctx
                               ).run(None))
    assert got["excluded_examples"] == 2
    np.testing.assert_allclose([got[m] for m in METRICS], pycocotools_stats(images),
                               atol=1e-4)
    np.testing.assert_allclose([got[f"{m}_dedup"] for m in METRICS],
                               pycocotools_stats(kept), atol=1e-4)
    assert got["AP_dedup"] != got["AP"]

    # VOC07 AP on the kept images, by voc_ap (checked against the devkit rule in
    # test_detection_ap.py).
    got = dict(VocApEvaluator(schema.evaluator("test", {"type": "voc_ap", **cfg}), ctx
                              ).run(None))
    voc = [ImageObjects(im.gt_boxes, im.gt_classes, dif, im.dt_boxes, im.dt_scores,
                        im.dt_classes) for im, dif in zip(images, difficult)]
    for suffix, subset in (("", voc), ("_dedup", [v for i, v in enumerate(voc)
                                                  if i not in drop])):
        want = voc_ap(subset, 3)
        np.testing.assert_allclose([got[f"AP{suffix}/{c}"] for c in range(3)],
                                   want["per_class"], atol=1e-6)
        assert got[f"mAP{suffix}"] == pytest.approx(want["mAP"], abs=1e-6)
    assert got["mAP_dedup"] != got["mAP"]
