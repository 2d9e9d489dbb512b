"""Box AP: COCO's (against pycocotools) and VOC07's (against py-faster-rcnn's
voc_eval, written out here), the results JSON the pose task reads, and the
evaluators end to end over padded batches of normalised boxes."""

import contextlib
import io
import json

import ml_collections
import numpy as np
import pytest

import evaluators
from big_vision_like.config import schema
from evaluators.bootstrap import resample_indices
from evaluators.coco_ap import (
    METRICS,
    ImageBoxes,
    box_iou,
    coco_ap,
    coco_ap_of_resamples,
    write_coco_results,
)
from evaluators.common import EvalContext
from evaluators.voc_ap import ImageObjects, voc_ap
from input_pipeline.keys import MASK_KEY

W, H = 640, 480


# --- COCO ----------------------------------------------------------------------------

def random_boxes(rng, n):
    """[n, 4] (ymin, xmin, ymax, xmax) pixels with sides from 4 to 300 (small, medium
    and large objects)."""
    hh, ww = np.exp(rng.uniform(np.log(4), np.log(300), (2, n)))
    y0, x0 = rng.uniform(0, H - hh), rng.uniform(0, W - ww)
    return np.stack([y0, x0, y0 + hh, x0 + ww], -1)


def random_coco_images(seed, n_img=8, n_cls=3):
    """Crowds, annotation areas unlike box areas, images without ground truth or
    without detections, one image with more than 100 detections of a class, and
    tied scores."""
    rng = np.random.default_rng(seed)
    images = []
    for i in range(n_img):
        g = 0 if i == 1 else int(rng.integers(1, 8))
        gt = random_boxes(rng, g)
        gt_cls = rng.integers(0, n_cls, g)
        box_area = (gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1])
        areas = box_area * rng.uniform(0.4, 1.0, g)
        d = 0 if i == 2 else (130 if i == 3 else int(rng.integers(1, 30)))
        src = rng.integers(0, max(g, 1), d)
        near = (rng.random(d) < 0.7) & (g > 0)
        dt = np.where(near[:, None], gt[src] if g else 0, random_boxes(rng, d))
        dt = dt + near[:, None] * rng.normal(0, 1, (d, 4)) * rng.uniform(1, 15, (d, 1))
        dt_cls = np.where(near & (rng.random(d) < .85), gt_cls[src] if g else 0,
                          rng.integers(0, n_cls, d))
        scores = rng.random(d)
        if i % 2 == 0:
            scores = np.round(scores, 1)  # ties
        images.append(ImageBoxes(gt, gt_cls, dt, scores, dt_cls, areas, rng.random(g) < .15))
    return images


def pycocotools_stats(images):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def xywh(b):
        return [b[1], b[0], b[3] - b[1], b[2] - b[0]]

    imgs, anns, dets = [], [], []
    for i, im in enumerate(images):
        imgs.append({"id": i + 1, "width": W, "height": H})
        for b, c, a, crowd in zip(im.gt_boxes, im.gt_classes, im.gt_areas, im.gt_iscrowd):
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": int(c) + 1,
                         "bbox": xywh(b), "area": float(a), "iscrowd": int(crowd)})
        for b, s, c in zip(im.dt_boxes, im.dt_scores, im.dt_classes):
            dets.append({"image_id": i + 1, "category_id": int(c) + 1, "bbox": xywh(b),
                         "score": float(s)})
    gt = COCO()
    gt.dataset = {"images": imgs, "annotations": anns,
                  "categories": [{"id": c + 1, "name": str(c)} for c in range(3)]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(dets), iouType="bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


def test_coco_ap_matches_pycocotools():
    seen = []
    for seed in range(5):
        images = random_coco_images(seed)
        ours = coco_ap(images)
        want = pycocotools_stats(images)
        np.testing.assert_allclose([ours[m] for m in METRICS], want, atol=1e-6,
                                   err_msg=f"seed {seed}")
        seen.append(want)
    seen = np.asarray(seen)
    # Not degenerate: every metric is defined somewhere, AP varies inside (0, 1), and
    # AR1 < AR10 < AR100 (the detection budget matters).
    assert (seen > 0).any(0).all()
    assert seen[:, 0].std() > 0.01 and ((seen[:, 0] > 0) & (seen[:, 0] < 1)).all()
    assert (seen[:, 6] < seen[:, 7]).all() and (seen[:, 7] <= seen[:, 8]).all()


def test_a_resample_scores_as_coco_ap_of_its_images_repeats_and_absent_classes_included():
    images = random_coco_images(0, n_img=12, n_cls=4)
    of_resample = coco_ap_of_resamples(images)
    assert of_resample(np.arange(12)) == coco_ap(images)
    draws = [*resample_indices(12, 6, seed=1), np.array([3, 3, 3, 1]), np.array([1, 2])]
    for idx in draws:
        assert of_resample(idx) == coco_ap([images[i] for i in idx]), idx
    # Not vacuous: resamples differ from the whole set and from each other.
    aps = {of_resample(idx)["AP"] for idx in draws}
    assert len(aps) > 4 and coco_ap(images)["AP"] not in aps


def test_crowd_iou_is_over_the_detection_and_crowd_matches_do_not_count():
    gt = np.array([[0., 0., 100., 100.]])
    dt = np.array([[0., 0., 50., 50.], [50., 50., 150., 150.]])
    np.testing.assert_allclose(box_iou(dt, gt, [True])[:, 0], [1.0, 0.25])
    np.testing.assert_allclose(box_iou(dt, gt, [False])[:, 0], [0.25, 2500 / 17500])
    # Two detections inside a crowd and one exact on a real object: AP 1, not 1/3.
    crowd = np.array([[200., 200., 400., 400.]])
    images = [ImageBoxes(np.concatenate([gt, crowd]), [0, 0], np.array(
        [[0., 0., 100., 100.], [210., 210., 300., 300.], [250., 250., 350., 350.]]),
        [0.5, 0.9, 0.8], [0, 0, 0], gt_iscrowd=[False, True])]
    got = coco_ap(images)
    assert got["AP"] == pytest.approx(1.0) and got["AP_small"] == -1.0


def test_coco_ap_names_mismatched_inputs():
    bad = ImageBoxes(np.zeros((2, 4)), [0, 1], np.zeros((3, 4)), [0.5, 0.5], [0, 0, 1])
    with pytest.raises(ValueError, match="2 dt_scores for 3 detections"):
        coco_ap([bad])


def test_results_json_round_trips_into_the_pose_tasks_detections(tmp_path):
    from input_pipeline.pp import pose as pp_pose

    rng = np.random.default_rng(0)
    boxes = random_boxes(rng, 5)
    ids, scores = np.array([7, 7, 7, 9, 9]), np.array([.3, .9, .5, .8, .1])
    classes = np.array([0, 0, 1, 0, 0])
    path = str(tmp_path / "dets.json")
    assert write_coco_results(path, ids, boxes, scores, classes) == 5
    rows = json.load(open(path))
    assert [r["category_id"] for r in rows] == [1, 1, 2, 1, 1]
    np.testing.assert_allclose(rows[0]["bbox"], [boxes[0, 1], boxes[0, 0], boxes[0, 3] -
                                                 boxes[0, 1], boxes[0, 2] - boxes[0, 0]],
                               atol=1e-3)
    # The pose task keeps the person class (id 1), best first per image.
    dets = pp_pose.Detections(path, max_objects=3)
    got_boxes, got_scores, count = (np.asarray(t) for t in dets.lookup(7))
    assert int(count) == 2
    np.testing.assert_allclose(got_scores[:2], [.9, .3], rtol=1e-6)
    np.testing.assert_allclose(got_boxes[:2], boxes[[1, 0]], atol=2e-3)
    assert int(np.asarray(dets.lookup(8)[2])) == 0
    for mapping in ({0: 18, 1: 3}, ml_collections.ConfigDict({"0": 18, "1": 3})):
        write_coco_results(path, ids, boxes, scores, classes, category_ids=mapping)
        assert [r["category_id"] for r in json.load(open(path))] == [18, 18, 3, 18, 18]
    with pytest.raises(ValueError, match="class 1 has no entry in category_ids"):
        write_coco_results(path, ids, boxes, scores, classes, category_ids=[5])


# --- VOC -----------------------------------------------------------------------------

def reference_voc_eval(images, c, ovthresh=0.5):
    """py-faster-rcnn's voc_eval (use_07_metric=True) on (xmin, ymin, xmax, ymax), with
    the devkit's two rules where the port differs: a match at overlap >= 0.5
    (VOCevaldet.m's `ovmax>=VOCopts.minoverlap`) and recall thresholds k/10."""
    class_recs, npos = {}, 0
    for i, im in enumerate(images):
        m = np.asarray(im.gt_classes) == c
        bbox = np.asarray(im.gt_boxes)[m][:, [1, 0, 3, 2]]
        difficult = np.asarray(im.gt_difficult)[m].astype(bool)
        npos += sum(~difficult)
        class_recs[i] = {"bbox": bbox, "difficult": difficult, "det": [False] * len(bbox)}
    image_ids, confidence, bb = [], [], []
    for i, im in enumerate(images):
        m = np.asarray(im.dt_classes) == c
        for b, s in zip(np.asarray(im.dt_boxes)[m], np.asarray(im.dt_scores)[m]):
            image_ids.append(i)
            confidence.append(s)
            bb.append(b[[1, 0, 3, 2]])
    confidence, bb = np.array(confidence), np.array(bb).reshape(-1, 4)
    sorted_ind = np.argsort(-confidence)
    bb = bb[sorted_ind, :]
    image_ids = [image_ids[x] for x in sorted_ind]
    nd = len(image_ids)
    tp, fp = np.zeros(nd), np.zeros(nd)
    for d in range(nd):
        R = class_recs[image_ids[d]]
        b = bb[d, :].astype(float)
        ovmax = -np.inf
        BBGT = R["bbox"].astype(float)
        if BBGT.size > 0:
            ixmin = np.maximum(BBGT[:, 0], b[0])
            iymin = np.maximum(BBGT[:, 1], b[1])
            ixmax = np.minimum(BBGT[:, 2], b[2])
            iymax = np.minimum(BBGT[:, 3], b[3])
            iw = np.maximum(ixmax - ixmin + 1., 0.)
            ih = np.maximum(iymax - iymin + 1., 0.)
            inters = iw * ih
            uni = ((b[2] - b[0] + 1.) * (b[3] - b[1] + 1.) +
                   (BBGT[:, 2] - BBGT[:, 0] + 1.) * (BBGT[:, 3] - BBGT[:, 1] + 1.) - inters)
            overlaps = inters / uni
            ovmax = np.max(overlaps)
            jmax = np.argmax(overlaps)
        if ovmax >= ovthresh:
            if not R["difficult"][jmax]:
                if not R["det"][jmax]:
                    tp[d] = 1.
                    R["det"][jmax] = 1
                else:
                    fp[d] = 1.
        else:
            fp[d] = 1.
    fp, tp = np.cumsum(fp), np.cumsum(tp)
    rec = tp / float(npos)
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    ap = 0.
    for t in [k / 10 for k in range(11)]:
        p = 0 if np.sum(rec >= t) == 0 else np.max(prec[rec >= t])
        ap = ap + p / 11.
    return ap


def random_voc_images(seed, n_img=10, n_cls=3):
    """Integer-pixel ground truth (some difficult), detections near it (duplicates
    included) or anywhere, continuous scores."""
    rng = np.random.default_rng(seed)
    images = []
    for i in range(n_img):
        g = 0 if i == 1 else int(rng.integers(1, 6))
        gt = np.round(random_boxes(rng, g))
        gt_cls = rng.integers(0, n_cls, g)
        d = 0 if i == 2 else int(rng.integers(1, 15))
        src = rng.integers(0, max(g, 1), d)
        near = (rng.random(d) < 0.75) & (g > 0)
        dt = np.where(near[:, None], gt[src] if g else 0, random_boxes(rng, d))
        dt = np.round(dt + near[:, None] * rng.normal(0, 1, (d, 4)) * rng.uniform(1, 12, (d, 1)))
        dt_cls = np.where(near & (rng.random(d) < .85), gt_cls[src] if g else 0,
                          rng.integers(0, n_cls, d))
        images.append(ImageObjects(gt, gt_cls, rng.random(g) < .25, dt, rng.random(d), dt_cls))
    return images


def test_voc_ap_matches_the_devkit_rule():
    seen = []
    for seed in range(6):
        images = random_voc_images(seed)
        got = voc_ap(images, num_classes=3)
        want = [reference_voc_eval(images, c) for c in range(3)]
        np.testing.assert_allclose(got["per_class"], want, atol=1e-12, err_msg=f"seed {seed}")
        assert got["mAP"] == pytest.approx(np.mean(want))
        seen.extend(want)
    seen = np.asarray(seen)
    assert seen.std() > 0.02 and ((seen > 0) & (seen < 1)).mean() > 0.5


def test_voc_difficult_detections_are_neither_true_nor_false_and_plus_one_counts():
    gt = np.array([[10., 10., 19., 19.], [50., 50., 59., 59.]])
    # Two detections of the hard box rank first and are ignored (no TP, no FP), then
    # a false positive, then the easy box: precision .5 at recall 1 -> AP .5 (it would
    # be 1 if the hard box counted).
    dt = np.concatenate([gt[[1, 1]], [[100., 100., 120., 120.]], gt[:1]])
    images = [ImageObjects(gt, [0, 0], [False, True], dt, [.9, .8, .6, .5], [0, 0, 0, 0])]
    assert voc_ap(images)["per_class"] == [pytest.approx(0.5)]
    assert voc_ap([ImageObjects(gt[1:], [0], [True], dt, [.9, .8, .6, .5], [0] * 4)]
                  )["per_class"] == [-1.0]
    # A 10-pixel box shifted 3 pixels: the devkit's IoU is 70/130 > .5; without the
    # +1 it would be 54/108 = .5, not above the threshold.
    shift = np.array([[0., 3., 0., 3.]])
    shifted = ImageObjects(gt[:1], [0], [False], gt[:1] + shift, [.9], [0])
    assert voc_ap([shifted])["mAP"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="class ids range over 0..2 but there are 2"):
        voc_ap([ImageObjects(gt, [0, 2], [False, False], gt, [.5, .5], [0, 0])], 2)


# --- evaluators end to end -----------------------------------------------------------

def batches_of(images, sizes, difficult, batch=3, g_pad=9, d_pad=140):
    """Padded batches (last one with `_mask` padding) of normalised boxes, the
    detections carried in the batch for the fake predict function."""
    n = len(images)
    rows = -(-n // batch) * batch
    arr = {"image_id": np.zeros(rows, np.int64), "orig_hw": np.zeros((rows, 2), np.int32),
           "gt_boxes": np.zeros((rows, g_pad, 4), np.float32),
           "gt_classes": np.zeros((rows, g_pad), np.int32),
           "gt_iscrowd": np.zeros((rows, g_pad), bool),
           "gt_difficult": np.zeros((rows, g_pad), bool),
           "gt_areas": np.zeros((rows, g_pad), np.float32),
           "gt_valid": np.zeros((rows, g_pad), bool),
           "detection_boxes": np.zeros((rows, d_pad, 4), np.float32),
           "detection_scores": np.zeros((rows, d_pad), np.float32),
           "detection_classes": np.zeros((rows, d_pad), np.int32),
           "detection_valid": np.zeros((rows, d_pad), bool),
           MASK_KEY: np.arange(rows) < n}
    for i, (im, (h, w)) in enumerate(zip(images, sizes)):
        g, d = len(im.gt_classes), len(im.dt_classes)
        scale = np.array([h, w, h, w])
        arr["image_id"][i], arr["orig_hw"][i] = 100 + i, (h, w)
        arr["gt_boxes"][i, :g] = im.gt_boxes / scale
        arr["gt_classes"][i, :g] = im.gt_classes
        arr["gt_iscrowd"][i, :g] = im.gt_iscrowd
        arr["gt_difficult"][i, :g] = difficult[i]
        arr["gt_areas"][i, :g] = im.gt_areas
        arr["gt_valid"][i, :g] = True
        arr["detection_boxes"][i, :d] = im.dt_boxes / scale
        arr["detection_scores"][i, :d] = im.dt_scores
        arr["detection_classes"][i, :d] = im.dt_classes
        arr["detection_valid"][i, :d] = True
    return [{k: v[s:s + batch] for k, v in arr.items()} for s in range(0, rows, batch)]


def test_evaluators_end_to_end_convert_normalised_boxes_to_pixels(tmp_path):
    images = random_coco_images(7)
    rng = np.random.default_rng(1)
    # Different image sizes: a wrong h/w order or a missed scale changes the boxes.
    sizes = [(int(rng.integers(300, 700)), int(rng.integers(300, 700))) for _ in images]
    difficult = [rng.random(len(im.gt_classes)) < .25 for im in images]
    for im, (h, w) in zip(images, sizes):  # keep boxes inside their own image
        s = np.array([h / H, w / W, h / H, w / W])
        im.gt_boxes, im.dt_boxes = im.gt_boxes * s, im.dt_boxes * s
    batches = batches_of(images, sizes, difficult)
    outputs = ("detection_boxes", "detection_scores", "detection_classes",
               "detection_valid")
    ctx = EvalContext(mesh=None, batch_loss=None, batch_size=3,
                      predict_fns={"predict": lambda v, b: {k: b[k] for k in outputs}},
                      eval_batches=lambda *a: iter(batches))
    reg = evaluators.default_registry()
    path = str(tmp_path / "dets.json")
    cfg = schema.evaluator("test", dict(type="coco_ap", data={}, pp="", results_json=path,
                                        category_ids=[1, 5, 9]))
    got = dict(reg.get("coco_ap")(cfg, ctx).run(None))
    # The float32 round trip through normalised boxes moves IoUs by ~1e-7.
    want = coco_ap(images)
    assert list(got) == list(METRICS)
    np.testing.assert_allclose([got[m] for m in METRICS], [want[m] for m in METRICS],
                               atol=1e-4)
    rows = json.load(open(path))
    assert len(rows) == sum(len(im.dt_scores) for im in images)
    first = images[0]
    np.testing.assert_allclose(rows[0]["bbox"][:2], first.dt_boxes[0, [1, 0]], atol=2e-3)
    assert rows[0]["image_id"] == 100 and rows[0]["category_id"] == [1, 5, 9][
        first.dt_classes[0]]

    voc_images = [ImageObjects(im.gt_boxes, im.gt_classes, dif, im.dt_boxes, im.dt_scores,
                               im.dt_classes) for im, dif in zip(images, difficult)]
    cfg = schema.evaluator("test", dict(type="voc_ap", data={}, pp="",
                                        class_names=["a", "b", "c"]))
    got = dict(reg.get("voc_ap")(cfg, ctx).run(None))
    want = [reference_voc_eval(voc_images, c) for c in range(3)]
    assert list(got) == ["mAP", "AP/a", "AP/b", "AP/c"]
    np.testing.assert_allclose([got["AP/a"], got["AP/b"], got["AP/c"]], want, atol=1e-6)
    assert got["mAP"] == pytest.approx(np.mean(want), abs=1e-6)


def test_voc07_matches_at_exactly_half_overlap_and_counts_a_recall_of_exactly_3_tenths():
    # Integer-pixel boxes: (0, 0, 9, 9) is 10x10 = 100 pixels, (0, 0, 9, 4) is 10x5 =
    # 50 inside it, so their overlap is exactly 50 / 100 = 0.5: a match (devkit >=).
    gt = np.array([[0, 0, 9, 9]], np.float64)
    half = ImageObjects(gt, np.array([0]), np.array([False]), np.array([[0, 0, 9, 4.0]]),
                        np.array([0.9]), np.array([0]))
    assert voc_ap([half])["mAP"] == pytest.approx(1.0)
    # Ten objects, three found first: precision 1 up to a recall of exactly 3/10, so
    # thresholds 0, .1, .2, .3 score 1 and AP is 4/11 (float steps would give 3/11).
    boxes = np.array([[20 * i, 0, 20 * i + 9, 9] for i in range(10)], np.float64)
    found = ImageObjects(boxes, np.zeros(10, int), np.zeros(10, bool), boxes[:3],
                         np.array([0.9, 0.8, 0.7]), np.zeros(3, int))
    assert voc_ap([found])["mAP"] == pytest.approx(4 / 11)
