"""PASCAL VOC 2007 detection mAP in NumPy, and its evaluator.

`voc_ap` follows the VOC 2007 devkit (VOCevaldet.m, VOCap) per class: detections
sorted by confidence over the whole split; each is compared with every ground
truth box of its image and takes the one of largest overlap; it is a true
positive if that overlap is at least 0.5 (the devkit's `ovmax>=minoverlap`;
py-faster-rcnn's `voc_eval` port uses `> 0.5`) and the box is not yet taken, a
false positive otherwise, except that a detection whose best box is 'difficult'
is neither (and difficult boxes do not count towards recall); AP is the 11-point
interpolated precision: the mean over recall thresholds t = k/10, k = 0..10, of
the largest precision at recall >= t. The thresholds are exact tenths, not
float steps (`np.arange(0, 1.1, .1)` holds 0.30000000000000004, which a recall
of exactly 3/10 misses). Overlap uses the devkit's
integer-pixel convention: widths and heights are `x2 - x1 + 1`, so boxes must be
in the devkit's pixel units (0- or 1-based alike; only differences matter).

Boxes are (ymin, xmin, ymax, xmax) in image pixels, as everywhere in this project.
A class without any non-difficult ground truth has AP -1 and is left out of mAP.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from evaluators.bootstrap import interval_metrics
from evaluators.coco_ap import collect_detections, image_records
from evaluators.common import EvalContext, dedup_items
from input_pipeline.image_ids import load_ids

IOU_THRESHOLD = 0.5


@dataclasses.dataclass
class ImageObjects:
    """One image's ground truth (gt_boxes [G, 4] pixels, gt_classes [G], gt_difficult
    [G]) and detections (dt_boxes [D, 4] pixels, dt_scores [D], dt_classes [D])."""

    gt_boxes: np.ndarray
    gt_classes: np.ndarray
    gt_difficult: np.ndarray
    dt_boxes: np.ndarray
    dt_scores: np.ndarray
    dt_classes: np.ndarray


def voc_iou(box: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """[G] overlap of one box with gt [G, 4] (ymin, xmin, ymax, xmax), the devkit's
    way: sizes of integer-pixel boxes are (max - min + 1)."""
    gt = np.asarray(gt, np.float64).reshape(-1, 4)
    ih = np.maximum(np.minimum(box[2], gt[:, 2]) - np.maximum(box[0], gt[:, 0]) + 1.0, 0.0)
    iw = np.maximum(np.minimum(box[3], gt[:, 3]) - np.maximum(box[1], gt[:, 1]) + 1.0, 0.0)
    inter = ih * iw
    union = ((box[2] - box[0] + 1.0) * (box[3] - box[1] + 1.0)
             + (gt[:, 2] - gt[:, 0] + 1.0) * (gt[:, 3] - gt[:, 1] + 1.0) - inter)
    return inter / union


def ap_11_point(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC07 11-point interpolated AP."""
    ap = 0.0
    for k in range(11):
        above = recall >= k / 10
        ap += (float(precision[above].max()) if above.any() else 0.0) / 11.0
    return ap


def class_ap(images: Sequence[ImageObjects], c: int) -> float:
    """VOC07 AP of class c (-1 without non-difficult ground truth)."""
    gts, hard, dets = [], [], []
    for i, im in enumerate(images):
        gm = np.asarray(im.gt_classes).ravel() == c
        gts.append(np.asarray(im.gt_boxes, np.float64).reshape(-1, 4)[gm])
        hard.append(np.asarray(im.gt_difficult, bool).ravel()[gm])
        dm = np.asarray(im.dt_classes).ravel() == c
        for box, s in zip(np.asarray(im.dt_boxes, np.float64).reshape(-1, 4)[dm],
                          np.asarray(im.dt_scores, np.float64).ravel()[dm]):
            dets.append((s, i, box))
    num_pos = int(sum(np.count_nonzero(~h) for h in hard))
    if num_pos == 0:
        return -1.0
    # Stable, so that ties keep dataset order.
    order = np.argsort(-np.array([s for s, _, _ in dets]), kind="mergesort")
    taken = [np.zeros(len(g), bool) for g in gts]
    tp, fp = np.zeros(len(dets)), np.zeros(len(dets))
    for rank, k in enumerate(order):
        _, i, box = dets[k]
        if len(gts[i]) == 0:
            fp[rank] = 1
            continue
        ov = voc_iou(box, gts[i])
        j = int(np.argmax(ov))
        if ov[j] >= IOU_THRESHOLD:
            if hard[i][j]:
                continue
            if not taken[i][j]:
                tp[rank], taken[i][j] = 1, True
            else:
                fp[rank] = 1
        else:
            fp[rank] = 1
    tp, fp = np.cumsum(tp), np.cumsum(fp)
    recall = tp / num_pos
    precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return ap_11_point(recall, precision)


def voc_ap(images: Sequence[ImageObjects], num_classes: int | None = None
           ) -> dict[str, Any]:
    """{'per_class': [AP of class 0, 1, ...] (-1 where undefined), 'mAP': mean over
    the defined ones (-1 if none)}. num_classes defaults to the largest class seen
    + 1."""
    seen = [int(c) for im in images for c in (*np.asarray(im.gt_classes).ravel(),
                                                *np.asarray(im.dt_classes).ravel())]
    if num_classes is None:
        num_classes = max(seen, default=-1) + 1
    elif seen and (max(seen) >= num_classes or min(seen) < 0):
        raise ValueError(f"class ids range over {min(seen)}..{max(seen)} but there are "
                         f"{num_classes} classes; give class_names for every class "
                         "(0-based ids).")
    per_class = [class_ap(images, c) for c in range(num_classes)]
    defined = [a for a in per_class if a > -1]
    return {"per_class": per_class,
            "mAP": float(np.mean(defined)) if defined else -1.0}


def images_from_predictions(got: Mapping[str, np.ndarray]) -> list[ImageObjects]:
    return [ImageObjects(**r) for r in image_records(got, {"gt_difficult": bool})]


class VocApEvaluator:
    """config: data, pp, batch_size, pred (as `coco_ap`'s evaluator), class_names
    (optional: per-class AP reported as `AP/<name>`, and the number of classes),
    results_json and category_ids (optional, as `coco_ap`'s). Batches carry image_id,
    orig_hw [B, 2] pixels, gt_boxes [B, G, 4] normalised to the original image,
    gt_classes, gt_difficult, gt_valid. Yields `mAP`, then `AP/<name>` (class_names
    given) or `AP/<class index>`; with exclude_ids (file of image ids or a
    list, e.g. near-duplicates of pre-training images) also `excluded_examples` and
    each metric again with `_dedup` over the other images."""

    KEYS = ("image_id", "orig_hw", "gt_boxes", "gt_classes", "gt_difficult", "gt_valid")

    def __init__(self, config: Any, context: EvalContext):
        self.config, self.ctx = config, context
        self.excluded = load_ids(config.exclude_ids)

    def run(self, variables: Any) -> Iterator[tuple[str, float]]:
        names = self.config.class_names
        got = collect_detections(self.ctx, variables, self.config, self.KEYS)
        images = images_from_predictions(got)
        for suffix, kept in dedup_items(images, got["image_id"], self.excluded):
            if suffix:
                yield "excluded_examples", float(len(images) - len(kept))
            result = voc_ap(kept, len(names) if names else None)
            # Resamples score the same classes, present in them or not.
            num_classes = len(result["per_class"])
            yield f"mAP{suffix}", result["mAP"]
            yield from interval_metrics(
                lambda idx, kept=kept, suffix=suffix, n=num_classes: {
                    f"mAP{suffix}": voc_ap([kept[i] for i in idx], n)["mAP"]},
                len(kept), self.config.bootstrap)
            for c, ap in enumerate(result["per_class"]):
                yield f"AP{suffix}/{names[c] if names else c}", ap
