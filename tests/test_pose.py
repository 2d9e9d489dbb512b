"""Pose (G-RMI): keypoint AP against pycocotools, targets and loss against float64
NumPy, decoding, OKS-NMS, person-crop pp ops, a sharded step against one device,
and a tiny training run through the one loop."""

import contextlib
import io
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from big_vision_like import mesh as mesh_lib
from big_vision_like import trainer
from big_vision_like.metrics import read_metrics
from big_vision_like.models.pose_resnet import PoseResNet
from big_vision_like.models.resnet import ResNet
from big_vision_like.tasks import pose_decode
from big_vision_like.tasks.pose import PoseTask
from configs.transfer import pose_synthetic
from evaluators.bootstrap import resample_indices
from evaluators.keypoint_ap import (
    COCO_SIGMAS,
    ImageKeypoints,
    keypoint_ap,
    keypoint_ap_of_resamples,
    with_detections,
)
from tests.helpers import data_dir_of, train_steps_on

METRICS = ("AP", "AP50", "AP75", "AP_medium", "AP_large", "AR", "AR50", "AR75", "AR_medium",
           "AR_large")


# --- keypoint AP -------------------------------------------------------------------

def random_images(seed, k, n_img=6):
    """Ground truth with crowds, unlabelled keypoints and persons without any, and
    detections near some persons (noise of several sizes) or anywhere."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n_img):
        g = int(rng.integers(0, 5))
        cy, cx = rng.uniform(50, 400, (2, g))
        hh, ww = rng.uniform(10, 200, (2, g))
        boxes = np.stack([cy - hh / 2, cx - ww / 2, cy + hh / 2, cx + ww / 2], -1)
        kp = np.zeros((g, k, 3))
        kp[..., 0] = boxes[:, None, 0] + rng.random((g, k)) * hh[:, None]
        kp[..., 1] = boxes[:, None, 1] + rng.random((g, k)) * ww[:, None]
        kp[..., 2] = rng.choice([0, 1, 2], (g, k), p=[.3, .2, .5])
        if g and rng.random() < .5:
            kp[0, :, 2] = 0  # a person without labelled keypoints
        kp[kp[..., 2] == 0, :2] = 0
        d = int(rng.integers(0, 25))
        src = rng.integers(0, max(g, 1), d)
        dt = np.zeros((d, k, 2))
        for j in range(d):
            if g and rng.random() < .7:
                base = np.where(kp[src[j], :, 2:] > 0, kp[src[j], :, :2],
                                boxes[src[j], None, :2] + 5)
                dt[j] = base + rng.normal(0, rng.uniform(1, 15), (k, 2))
            else:
                dt[j] = rng.uniform(0, 500, (1, 2)) + rng.normal(0, 30, (k, 2))
        images.append(ImageKeypoints(kp, boxes, hh * ww * rng.uniform(.5, 1, g),
                                     rng.random(g) < .2, dt, rng.random(d)))
    return images


def pycocotools_stats(images, sigmas):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    k = len(sigmas)
    imgs, anns, dets = [], [], []
    for i, im in enumerate(images):
        imgs.append({"id": i + 1, "width": 640, "height": 480})
        for g, (kp, b) in enumerate(zip(im.gt_keypoints, im.gt_boxes)):
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": 1,
                         "keypoints": np.stack([kp[:, 1], kp[:, 0], kp[:, 2]], -1).ravel()
                         .tolist(), "num_keypoints": int((kp[:, 2] > 0).sum()),
                         "bbox": [b[1], b[0], b[3] - b[1], b[2] - b[0]],
                         "area": float(im.gt_areas[g]), "iscrowd": int(im.gt_iscrowd[g])})
        for kp, s in zip(im.dt_keypoints, im.dt_scores):
            dets.append({"image_id": i + 1, "category_id": 1, "score": float(s),
                         "keypoints": np.stack([kp[:, 1], kp[:, 0], np.ones(k)], -1).ravel()
                         .tolist()})
    gt = COCO()
    gt.dataset = {"images": imgs, "annotations": anns,
                  "categories": [{"id": 1, "name": "person"}]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(dets), iouType="keypoints")
        ev.params.kpt_oks_sigmas = np.asarray(sigmas)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


@pytest.mark.parametrize("k,sigmas", [(17, COCO_SIGMAS), (5, (0.05, 0.1, 0.1, 0.2, 0.08))])
def test_keypoint_ap_matches_pycocotools(k, sigmas):
    seen = []
    for seed in range(6):
        images = random_images(seed, k)
        ours = keypoint_ap(images, sigmas)
        want = pycocotools_stats(images, sigmas)
        np.testing.assert_allclose([ours[m] for m in METRICS], want, atol=1e-6,
                                   err_msg=f"seed {seed}")
        seen.append(want)
    seen = np.asarray(seen)
    # The cases are not degenerate: AP varies and lies strictly inside (0, 1).
    assert seen[:, 0].std() > 0.01 and ((seen[:, 0] > 0) & (seen[:, 0] < 1)).all()


def test_a_resample_scores_as_keypoint_ap_of_its_images():
    images = random_images(0, 17)
    of_resample = keypoint_ap_of_resamples(images)
    draws = [*resample_indices(len(images), 5, seed=1), np.array([0, 0, 2])]
    for idx in draws:
        assert of_resample(idx) == keypoint_ap([images[i] for i in idx]), idx
    assert len({of_resample(idx)["AP"] for idx in draws}) > 3  # resamples differ


def test_perfect_detections_score_one_and_wrong_sigma_count_is_named():
    images = random_images(3, 17)
    for im in images:
        # One exact detection per person with labelled keypoints (a detection of
        # a person without any would be a false positive, as in COCO).
        people = (im.gt_keypoints[..., 2] > 0).any(-1)
        im.dt_keypoints = im.gt_keypoints[people, :, :2]
        im.dt_scores = np.ones(int(people.sum()))
        im.gt_iscrowd = np.zeros(len(im.gt_keypoints), bool)
    assert keypoint_ap(images)["AP"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="17 keypoints but 5 sigmas"):
        keypoint_ap(images, (0.1,) * 5)


# --- targets, loss, decoding --------------------------------------------------------

def numpy_loss(heat, off, kp, crop_hw, radius, delta):
    """Float64 loops: the loss as pose_decode documents it."""
    b_, h, w, k = heat.shape
    heat_l, off_l = np.zeros(b_), np.zeros(b_)
    disks = np.zeros(heat.shape)
    for b in range(b_):
        for j in range(k):
            if kp[b, j, 2] <= 0:
                continue
            ly, lx = kp[b, j, 0] * crop_hw[0], kp[b, j, 1] * crop_hw[1]
            xent = hub = n = 0.0
            for y in range(h):
                for x in range(w):
                    py, px = (y + .5) * crop_hw[0] / h, (x + .5) * crop_hw[1] / w
                    t = float((ly - py) ** 2 + (lx - px) ** 2 <= radius ** 2)
                    disks[b, y, x, j] = t
                    z = float(heat[b, y, x, j])
                    xent += max(z, 0) - z * t + np.log1p(np.exp(-abs(z)))
                    if t:
                        n += 1
                        for c, target in enumerate(((ly - py) / radius, (lx - px) / radius)):
                            e = abs(float(off[b, y, x, j, c]) - target)
                            hub += 0.5 * e * e if e <= delta else delta * (e - 0.5 * delta)
            heat_l[b] += xent / (k * h * w)
            off_l[b] += hub / max(n, 1) / k
    return heat_l, off_l, disks


@pytest.mark.parametrize("map_hw,crop_hw", [((12, 10), (24, 20)), ((9, 7), (9, 7))])
def test_targets_and_loss_match_float64_numpy(map_hw, crop_hw):
    rng = np.random.default_rng(0)
    b, k, radius = 3, 4, 2.7
    heat = rng.normal(0, 2, (b, *map_hw, k)).astype(np.float32)
    off = rng.normal(0, 1.5, (b, *map_hw, k, 2)).astype(np.float32)
    kp = np.concatenate([rng.uniform(-.05, 1.05, (b, k, 2)),
                         rng.integers(0, 3, (b, k, 1))], -1).astype(np.float32)
    kp[0, 0, 2] = 1  # at least one labelled keypoint
    want_h, want_o, want_disks = numpy_loss(heat, off, kp.astype(np.float64), crop_hw,
                                            radius, 1.0)
    disks, _, _ = pose_decode.targets(jnp.asarray(kp), map_hw, crop_hw, radius)
    np.testing.assert_array_equal(np.asarray(disks), want_disks)
    assert want_disks.sum() > 0 and (want_o > 0).any()
    got_h, got_o = pose_decode.loss_terms(jnp.asarray(heat), jnp.asarray(off),
                                          jnp.asarray(kp), crop_hw, radius, 1.0)
    np.testing.assert_allclose(got_h, want_h, rtol=1e-5)
    np.testing.assert_allclose(got_o, want_o, rtol=1e-5)
    # The task: weights 4 and 1, padded examples (_mask False) left out.
    task = PoseTask(model=None, radius=radius)
    mask = np.array([True, False, True])
    images = np.zeros((b, *crop_hw, 3), np.float32)
    total, aux = task.loss({"heatmaps": jnp.asarray(heat), "offsets": jnp.asarray(off)},
                           {"image": images, "keypoints": kp, "_mask": mask})
    np.testing.assert_allclose(total, (4 * want_h[mask] + want_o[mask]).mean(), rtol=1e-5)
    np.testing.assert_allclose(aux["offset_loss"], want_o[mask].mean(), rtol=1e-5)


def test_invisible_keypoints_contribute_nothing():
    rng = np.random.default_rng(1)
    heat = jnp.asarray(rng.normal(size=(2, 8, 8, 3)), jnp.float32)
    off = jnp.asarray(rng.normal(size=(2, 8, 8, 3, 2)), jnp.float32)
    kp = rng.uniform(0, 1, (2, 3, 3)).astype(np.float32)
    kp[..., 2] = [[1, 0, 1], [0, 0, 1]]
    moved = kp.copy()
    moved[kp[..., 2] == 0, :2] = rng.uniform(0, 1, (3, 2))
    a = pose_decode.loss_terms(heat, off, jnp.asarray(kp), (16, 16), 3.0)
    b = pose_decode.loss_terms(heat, off, jnp.asarray(moved), (16, 16), 3.0)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    grads = jax.grad(lambda h: pose_decode.loss_terms(h, off, jnp.asarray(kp), (16, 16),
                                                      3.0)[0].sum())(heat)
    assert np.abs(np.asarray(grads)[0, ..., 1]).max() == 0
    assert np.abs(np.asarray(grads)[0, ..., 0]).max() > 0


def test_decoding_recovers_keypoints_from_perfect_outputs():
    rng = np.random.default_rng(2)
    crop_hw, radius = (40, 32), 4.0
    kp = np.concatenate([rng.uniform(.05, .95, (3, 5, 2)), np.ones((3, 5, 1))], -1)
    disks, offsets, _ = pose_decode.targets(jnp.asarray(kp, jnp.float32), crop_hw, crop_hw,
                                            radius)
    # Perfect logits peak at the pixel nearest the keypoint; offsets are the targets.
    d2 = -((offsets * radius) ** 2).sum(-1)
    heat = jnp.where(disks > 0, 5.0 + d2 / radius ** 2, -8.0)
    got = np.asarray(pose_decode.decode(heat, offsets, crop_hw, radius))
    np.testing.assert_allclose(got[..., :2], kp[..., :2], atol=1e-5)
    assert (got[..., 2] > 0.98).all()


def numpy_votes(heat, off, crop_hw, radius):
    """Float64 loops: each pixel's probability splatted bilinearly where it points."""
    h, w, k = heat.shape
    votes = np.zeros((h, w, k))
    for y in range(h):
        for x in range(w):
            for j in range(k):
                ty = ((y + .5) * crop_hw[0] / h + radius * off[y, x, j, 0]) * h / crop_hw[0]
                tx = ((x + .5) * crop_hw[1] / w + radius * off[y, x, j, 1]) * w / crop_hw[1]
                ty, tx = ty - .5, tx - .5
                p = 1 / (1 + np.exp(-heat[y, x, j]))
                for yy in (int(np.floor(ty)), int(np.floor(ty)) + 1):
                    for xx in (int(np.floor(tx)), int(np.floor(tx)) + 1):
                        if 0 <= yy < h and 0 <= xx < w:
                            votes[yy, xx, j] += p * (1 - abs(ty - yy)) * (1 - abs(tx - xx))
    return votes / (np.pi * radius ** 2 * (h / crop_hw[0]) * (w / crop_hw[1]))


def test_hough_votes_match_numpy_and_recover_keypoints():
    rng = np.random.default_rng(4)
    heat = rng.normal(size=(1, 10, 8, 2)).astype(np.float32)
    off = rng.normal(0, .8, (1, 10, 8, 2, 2)).astype(np.float32)
    got = pose_decode.hough_votes(jnp.asarray(heat), jnp.asarray(off), (20, 16), 3.0)
    np.testing.assert_allclose(np.asarray(got)[0], numpy_votes(heat[0], off[0], (20, 16),
                                                               3.0), rtol=1e-4, atol=1e-7)
    crop_hw, radius = (40, 32), 4.0
    kp = np.concatenate([rng.uniform(.05, .95, (3, 5, 2)), np.ones((3, 5, 1))], -1)
    disks, offsets, _ = pose_decode.targets(jnp.asarray(kp, jnp.float32), crop_hw, crop_hw,
                                            radius)
    heat = jnp.where(disks > 0, 4.0, -8.0)
    dec = np.asarray(jax.jit(pose_decode.decode_hough, static_argnums=(2, 3))(
        heat, offsets, crop_hw, radius))
    # Votes land on the keypoint: the winning pixel is the nearest one.
    np.testing.assert_allclose(dec[..., :2], kp[..., :2], atol=0.5 / 32 + 1e-6)
    assert (dec[..., 2] > 0.98).all()


def test_oks_nms_removes_a_duplicate_and_keeps_a_distinct_person():
    rng = np.random.default_rng(3)
    a = rng.uniform(100, 200, (17, 2))
    kp = np.stack([a, a + rng.normal(0, 1.0, a.shape), a + 150.0])
    keep = pose_decode.oks_nms(kp, np.array([0.8, 0.9, 0.5]), np.full(3, 100.0 ** 2),
                               COCO_SIGMAS, 0.5)
    np.testing.assert_array_equal(keep, [1, 2])
    keep = pose_decode.oks_nms(kp, np.array([0.8, 0.9, 0.5]), np.full(3, 100.0 ** 2),
                               COCO_SIGMAS, 0.999)  # a strict threshold keeps all
    np.testing.assert_array_equal(keep, [1, 0, 2])


# --- model, sharded step ------------------------------------------------------------

def test_pose_body_has_the_classification_paths():
    pose = PoseResNet(depth=18, width=0.25, num_keypoints=5)
    cls = ResNet(depth=18, width=0.25, num_classes=0)
    x = jnp.zeros((1, 32, 32, 3))
    shapes = lambda v: {jax.tree_util.keystr(p): a.shape
                        for p, a in jax.tree_util.tree_leaves_with_path(v)}
    variables = jax.eval_shape(pose.init, jax.random.key(0), x)
    got = shapes(variables)
    want = shapes(jax.eval_shape(cls.init, jax.random.key(0), x))
    assert {k: v for k, v in got.items() if "keypoint_outputs" not in k} == want
    out, _ = jax.eval_shape(pose.apply, variables, x)
    assert out["heatmaps"].shape == (1, 32, 32, 5) and out["offsets"].shape == (1, 32, 32,
                                                                                 5, 2)


def pose_step(mesh):
    task = PoseTask(PoseResNet(depth=18, width=0.25, num_keypoints=5), radius=3.0)
    rng = np.random.default_rng(0)
    kp = np.concatenate([rng.uniform(0, 1, (8, 5, 2)), rng.integers(0, 2, (8, 5, 1))], -1)
    batch = {"image": rng.normal(size=(8, 32, 32, 3)).astype(np.float32),
             "keypoints": kp.astype(np.float32)}
    return train_steps_on(mesh, task, optax.sgd(0.05, momentum=0.9), batch)


@pytest.mark.slow
def test_sharded_pose_step_matches_one_device():
    state1, m1 = pose_step(mesh_lib.make_mesh(1, 1, devices=jax.devices()[:1]))
    state8, m8 = pose_step(mesh_lib.make_mesh(2, 4))
    for key in ("train/loss", "train/heatmap_loss", "train/offset_loss"):
        np.testing.assert_allclose(m8[key], m1[key], rtol=1e-4)
    for a, b in zip(jax.tree.leaves(state8.params), jax.tree.leaves(state1.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
    for a, b in zip(jax.tree.leaves(state8.model_state), jax.tree.leaves(state1.model_state)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


# --- pp ops -------------------------------------------------------------------------

def dot_example(tf, size=(40, 60)):
    """One object whose keypoint 0 is a bright dot; keypoint 2 lies far outside its box."""
    img = np.zeros((*size, 3), np.uint8)
    img[22, 31] = 255
    kp = np.array([[[22.5 / 40, 31.5 / 60, 1], [0.3, 0.5, 1], [0.99, 0.02, 1]]], np.float32)
    return {"image": tf.constant(img), "image_id": tf.constant(7, tf.int64),
            "_seed": tf.constant([1, 2], tf.int64),
            "objects": {"bbox": tf.constant([[0.25, 0.4, 0.75, 0.6]]),
                        "keypoints": tf.constant(kp)}}


def test_train_crop_puts_keypoints_where_the_pixels_are():
    import tensorflow as tf

    from input_pipeline.pp import pose as pp_pose

    out = pp_pose.pose_crop_train(None, (24, 16), context=1.25)(dot_example(tf))
    img, kp = out["image"].numpy(), out["keypoints"].numpy()
    assert img.shape == (24, 16, 3) and kp.shape == (3, 3)
    # Box 20x12 px -> 20x13.33 at aspect 3:2 -> 25x16.67 with context; the dot's
    # crop pixel is where its keypoint says, and the far keypoint is invisible.
    peak = np.unravel_index(img[..., 0].argmax(), img.shape[:2])
    np.testing.assert_allclose((np.asarray(peak) + 0.5) / (24, 16), kp[0, :2], atol=0.5 / 16)
    np.testing.assert_allclose(kp[0, :2], ((22.5 - 7.5) / 25, (31.5 - 30 + 25 / 3) / (50 / 3)),
                               atol=1e-5)
    np.testing.assert_array_equal(kp[:, 2], [1, 1, 0])


def test_eval_crops_every_person_and_reads_detections(tmp_path):
    import tensorflow as tf

    from input_pipeline.pp import pose as pp_pose

    out = pp_pose.pose_crop_eval(None, (24, 16), max_objects=3)(dot_example(tf))
    np.testing.assert_array_equal(out["pose_valid"].numpy(), [True, False, False])
    assert out["image"].shape == (3, 24, 16, 3) and out["image"].numpy()[1:].max() == 0
    np.testing.assert_allclose(out["gt_keypoints"].numpy()[0, 0], [22.5, 31.5, 1], atol=1e-4)
    np.testing.assert_allclose(out["gt_areas"].numpy()[0], 20 * 12, rtol=1e-5)
    dets = [{"image_id": 7, "category_id": 1, "bbox": [30, 10, 12, 20], "score": .4},
            {"image_id": 7, "category_id": 1, "bbox": [0, 0, 6, 9], "score": .9},
            {"image_id": 7, "category_id": 2, "bbox": [0, 0, 5, 5], "score": 1.0},
            {"image_id": 8, "category_id": 1, "bbox": [1, 1, 5, 5], "score": .5}]
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(dets))
    op = pp_pose.pose_crop_eval(None, (24, 16), max_objects=3, detections=str(path))
    # Inside tf.data, as the pipeline runs it (the lookup table is captured).
    out = next(iter(tf.data.Dataset.from_tensors(dot_example(tf)).map(op)))
    np.testing.assert_array_equal(out["pose_valid"].numpy(), [True, True, False])
    np.testing.assert_allclose(out["pose_box_scores"].numpy(), [.9, .4, 0])
    win = out["pose_windows"].numpy()[1]  # the y 10..30, x 30..42 box, extended
    np.testing.assert_allclose((win[:2] + win[2:]) / 2, [20, 36], atol=1e-5)
    np.testing.assert_allclose(win[2:] - win[:2], [25, 50 / 3], atol=1e-4)
    missing = dot_example(tf)
    missing["image_id"] = tf.constant(99, tf.int64)
    assert not op(missing)["pose_valid"].numpy().any()
    pp = with_detections("decode|pose_crop_eval((24, 16), max_objects=3)|keep('image')",
                         "d.json")
    assert "pose_crop_eval((24, 16), max_objects=3, detections='d.json')" in pp


@pytest.mark.parametrize("decoder,atol", [("argmax", 1e-3), ("hough", 1.0)])
def test_perfect_crop_outputs_map_back_to_the_image_and_score_ap_one(decoder, atol):
    """pose_crop_eval -> predict (decode, crop -> image pixels) -> OKS-NMS -> AP."""
    import tensorflow as tf

    from evaluators.keypoint_ap import images_from_predictions
    from input_pipeline.pp import pose as pp_pose

    ex = dot_example(tf, size=(64, 64))
    ex["objects"] = {"bbox": tf.constant([[.1, .1, .5, .4], [.5, .5, .95, .9]]),
                     "keypoints": tf.constant([[[.2, .2, 1], [.3, .3, 1], [.4, .15, 0]],
                                               [[.6, .6, 1], [.7, .8, 1], [.9, .7, 1]]])}
    crop_hw, radius = (24, 16), 2.0
    out = pp_pose.pose_crop_eval(None, crop_hw, max_objects=3)(ex)
    batch = {k: v.numpy()[None] for k, v in out.items() if k != "objects"}
    in_crop = pp_pose.to_crop(ex["objects"]["keypoints"], out["pose_windows"][:2],
                              tf.constant([64.0, 64.0])).numpy()
    in_crop = np.concatenate([in_crop, np.zeros((1, 3, 3), np.float32)])
    disks, offsets, _ = pose_decode.targets(jnp.asarray(in_crop), crop_hw, crop_hw, radius)
    d2 = -((offsets * radius) ** 2).sum(-1)
    heat = jnp.where(disks > 0, 5.0 + d2 / radius ** 2, -8.0)
    task = PoseTask(model=None, radius=radius, decoder=decoder)
    got = task.predict_fns()["predict"]({"heatmaps": heat, "offsets": offsets}, batch)
    labelled = batch["gt_keypoints"][0, :2, :, 2] > 0
    np.testing.assert_allclose(np.asarray(got["keypoints"])[0, :2, :, :2][labelled],
                               batch["gt_keypoints"][0, :2, :, :2][labelled], atol=atol)
    got = {**{k: np.asarray(v) for k, v in got.items()},
           **{k: batch[k] for k in ("image_id", "pose_valid", "pose_windows",
                                    "gt_keypoints", "gt_boxes", "gt_areas", "gt_iscrowd",
                                    "gt_valid")}}
    sigmas = (0.1,) * 3
    images = images_from_predictions(got, sigmas, 0.5)
    assert len(images[0].dt_keypoints) == 2  # the padded third crop is dropped
    assert keypoint_ap(images, sigmas)["AP"] == pytest.approx(1.0)


# --- through the one training loop --------------------------------------------------

@pytest.mark.slow
def test_tiny_pose_run_from_a_classification_body_reports_keypoint_ap(
        tiny_source, pretrained_tiny, tmp_path):
    config = pose_synthetic.get_config("tiny")
    config.input.data.data_dir = data_dir_of(tiny_source)
    config.input.shuffle_buffer = 100
    config.log_steps = 1
    # The pre-trained classification ResNet's body loads into the pose model as is.
    config.init_from.checkpoint = os.path.join(pretrained_tiny[0], "checkpoints", "8")
    trainer.train(config, str(tmp_path))
    report = (tmp_path / "init_from_report.txt").read_text().splitlines()
    assert "loaded: params/conv1/kernel" in report
    assert "loaded: batch_stats/conv5_block2/bn2/var" in report
    assert "kept fresh (skip pattern): params/keypoint_outputs/kernel" in report
    assert not [line for line in report if line.startswith("unused")]
    assert not [line for line in report if "not in checkpoint" in line]
    rows = list(read_metrics(str(tmp_path)))
    last = {k: v for row in rows for k, v in row.items()}
    assert np.isfinite(last["train/loss"]) and last["train/heatmap_loss"] > 0
    for m in ("AP", "AP50", "AP75", "AR"):
        assert 0.0 <= last[f"test/{m}"] <= 1.0, (m, last)


def test_eval_keeps_every_annotation_beyond_max_objects_or_says_why_not():
    import tensorflow as tf

    from input_pipeline.pp import pose as pp_pose

    ex = dot_example(tf)
    n = 25  # more people than crops (max_objects) and than the old cap (20)
    ex["objects"] = {"bbox": tf.tile(ex["objects"]["bbox"], [n, 1]),
                     "keypoints": tf.tile(ex["objects"]["keypoints"], [n, 1, 1])}
    out = pp_pose.pose_crop_eval(None, (24, 16), max_objects=20)(dict(ex))
    assert int(out["pose_valid"].numpy().sum()) == 20  # crops: at most max_objects
    assert int(out["gt_valid"].numpy().sum()) == n  # ground truth: every annotation
    with pytest.raises(tf.errors.InvalidArgumentError, match="more than max_gt=10"):
        pp_pose.pose_crop_eval(None, (24, 16), max_objects=3, max_gt=10)(dict(ex))
    # Inside a tf.data pipeline too (a traced graph, where an unused check could vanish).
    ds = tf.data.Dataset.from_tensors(dict(ex)).map(
        pp_pose.pose_crop_eval(None, (24, 16), max_objects=3, max_gt=10))
    with pytest.raises(tf.errors.InvalidArgumentError, match="more than max_gt=10"):
        next(iter(ds))
