"""COCO keypoint AP (object keypoint similarity), in NumPy, and its evaluator.

`keypoint_ap` reproduces pycocotools' `COCOeval(iouType='keypoints')` for one
category: OKS with per-keypoint sigmas, ten OKS thresholds .50:.05:.95, area
ranges all/medium/large, at most 20 detections per image, crowd ground truth
and ground truth without labelled keypoints ignored (matched without counting),
101-point interpolated precision (matching and accumulation shared with box AP in
`evaluators.coco_eval_core`). The tests check it against pycocotools, so
runs need no pycocotools.

Coordinates are (y, x) in image pixels, as everywhere in this project;
ground-truth keypoints carry a visibility (0: not labelled).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from evaluators.bootstrap import interval_metrics
from evaluators.coco_eval_core import (
    THRESHOLDS,
    ImageResult,
    accumulate,
    evaluate_image,
    mean_defined,
)
from evaluators.common import EvalContext, collect_predictions, dedup_items
from input_pipeline.image_ids import load_ids
from input_pipeline.pp.spec import parse_pp_spec

METRICS = ("AP", "AP50", "AP75", "AP_medium", "AP_large", "AR")
# COCO's 17 person keypoints (nose, eyes, ears, shoulders, elbows, wrists, hips,
# knees, ankles), from pycocotools' Params.setKpParams.
COCO_SIGMAS = (.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87,
               .89, .89)
COCO_SIGMAS = tuple(s / 10.0 for s in COCO_SIGMAS)
OKS_THRESHOLDS = THRESHOLDS
AREA_RANGES = {"all": (0.0, 1e10), "medium": (32.0 ** 2, 96.0 ** 2),
               "large": (96.0 ** 2, 1e10)}
MAX_DETS = 20


@dataclasses.dataclass
class ImageKeypoints:
    """One image's ground truth and detections.

    gt_keypoints [G, K, 3] (y, x, visibility); gt_boxes [G, 4] (ymin, xmin, ymax,
    xmax) pixels; gt_areas [G]; gt_iscrowd [G]; dt_keypoints [D, K, 2] (y, x);
    dt_scores [D].
    """

    gt_keypoints: np.ndarray
    gt_boxes: np.ndarray
    gt_areas: np.ndarray
    gt_iscrowd: np.ndarray
    dt_keypoints: np.ndarray
    dt_scores: np.ndarray


def oks(dt: np.ndarray, gt: np.ndarray, gt_boxes: np.ndarray, gt_areas: np.ndarray,
        sigmas: np.ndarray) -> np.ndarray:
    """[D, G] object keypoint similarity of detections dt [D, K, 2] to ground truth
    gt [G, K, 3], as COCO computes it (a ground truth with no labelled keypoint
    scores the distance outside its doubled box)."""
    dt, gt = np.asarray(dt, np.float64), np.asarray(gt, np.float64)
    variances = (2.0 * np.asarray(sigmas, np.float64)) ** 2
    labelled = gt[None, :, :, 2] > 0  # [1, G, K]
    dy = dt[:, None, :, 0] - gt[None, :, :, 0]
    dx = dt[:, None, :, 1] - gt[None, :, :, 1]
    # Unlabelled ground truth: distance to the box grown by its size on each side.
    b = np.asarray(gt_boxes, np.float64)
    h, w = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    y0, y1 = (b[:, 0] - h)[None, :, None], (b[:, 0] + 2 * h)[None, :, None]
    x0, x1 = (b[:, 1] - w)[None, :, None], (b[:, 1] + 2 * w)[None, :, None]
    yd, xd = dt[:, None, :, 0], dt[:, None, :, 1]
    oy = np.maximum(0, y0 - yd) + np.maximum(0, yd - y1)
    ox = np.maximum(0, x0 - xd) + np.maximum(0, xd - x1)
    any_labelled = labelled.any(-1, keepdims=True)
    dy, dx = np.where(any_labelled, dy, oy), np.where(any_labelled, dx, ox)
    e = (dx ** 2 + dy ** 2) / variances / (np.asarray(gt_areas, np.float64)[None, :, None]
                                           + np.spacing(1)) / 2
    counted = np.where(any_labelled, labelled, True)
    return (np.exp(-e) * counted).sum(-1) / counted.sum(-1)


def _evaluate(image: ImageKeypoints, sigmas: np.ndarray, area_range: tuple[float, float]
              ) -> ImageResult | None:
    """COCOeval.evaluateImg with OKS; crowd ground truth and ground truth without
    labelled keypoints are ignored whatever their area."""
    g, d, k = len(image.gt_keypoints), len(image.dt_keypoints), len(sigmas)
    gt_kp = np.asarray(image.gt_keypoints, np.float64).reshape(g, k, 3)
    dt_kp = np.asarray(image.dt_keypoints, np.float64).reshape(d, k, 2)
    areas = np.asarray(image.gt_areas, np.float64).reshape(g)
    crowd = np.asarray(image.gt_iscrowd, bool).reshape(g)
    sims = oks(dt_kp, gt_kp, np.asarray(image.gt_boxes).reshape(g, 4), areas, sigmas) \
        if g and d else np.zeros((d, g))
    # Detections' areas are those of their keypoints' bounding box (COCO's loadRes).
    extent = dt_kp.max(1) - dt_kp.min(1) if d else np.zeros((0, 2))
    return evaluate_image(sims, image.dt_scores, extent[:, 0] * extent[:, 1], areas, crowd,
                          crowd | ~(gt_kp[..., 2] > 0).any(-1), area_range, MAX_DETS,
                          OKS_THRESHOLDS)


def _check_sigmas(images: Sequence[ImageKeypoints], sigmas: np.ndarray) -> None:
    for i, im in enumerate(images):
        shape = np.shape(im.gt_keypoints)
        k = shape[1] if len(shape) == 3 else len(sigmas)
        if len(im.gt_keypoints) and k != len(sigmas):
            raise ValueError(f"image {i}: ground truth has {k} keypoints but {len(sigmas)} "
                             "sigmas were given; set the evaluator's sigmas to one per "
                             "keypoint.")


def keypoint_ap_of_resamples(images: Sequence[ImageKeypoints],
                             sigmas: Sequence[float] = COCO_SIGMAS
                             ) -> Callable[[np.ndarray], dict[str, float]]:
    """idx -> `keypoint_ap([images[i] for i in idx], sigmas)`, matching each image once
    (its matches do not depend on the other images): a bootstrap resample only
    re-accumulates."""
    sigmas = np.asarray(sigmas, np.float64)
    _check_sigmas(images, sigmas)
    per_area = {label: [_evaluate(im, sigmas, rng) for im in images]
                for label, rng in AREA_RANGES.items()}

    def summarize(idx: np.ndarray) -> dict[str, float]:
        out: dict[str, float] = {}
        for label, results in per_area.items():
            precision, recall = accumulate([results[i] for i in idx], len(OKS_THRESHOLDS))
            suffix = "" if label == "all" else f"_{label}"
            out[f"AP{suffix}"] = mean_defined(precision)
            out[f"AR{suffix}"] = mean_defined(recall)
            if label == "all":
                out["AP50"], out["AP75"] = (mean_defined(precision[i]) for i in (0, 5))
                out["AR50"], out["AR75"] = (mean_defined(recall[i:i + 1]) for i in (0, 5))
        return out

    return summarize


def keypoint_ap(images: Sequence[ImageKeypoints], sigmas: Sequence[float] = COCO_SIGMAS
                ) -> dict[str, float]:
    """COCO keypoint metrics: AP, AP50, AP75, AP_medium, AP_large, AR, AR50, AR75,
    AR_medium, AR_large (-1 where there is no ground truth to score, as COCO)."""
    return keypoint_ap_of_resamples(images, sigmas)(np.arange(len(images)))


def with_detections(pp: str, detections: str) -> str:
    """The pp string with `detections=` set in its pose_crop_eval op (person boxes
    from a COCO results JSON instead of the ground truth)."""
    ops = parse_pp_spec(pp)
    if not any(name == "pose_crop_eval" for name, _, _ in ops):
        raise ValueError(f"detections={detections!r} needs a pose_crop_eval op in the "
                         f"evaluator's pp string ({pp!r}).")
    parts = []
    for name, args, kwargs in ops:
        if name == "pose_crop_eval":
            kwargs = {**kwargs, "detections": detections}
        given = [*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())]
        parts.append(f"{name}({', '.join(given)})")
    return "|".join(parts)


def images_from_predictions(got: dict[str, np.ndarray], sigmas: Sequence[float],
                            nms_threshold: float) -> list[ImageKeypoints]:
    """Per-image records from `collect_predictions` of a pose task: valid person crops,
    OKS-NMS between them, ground truth without its padding."""
    from big_vision_like.tasks.pose_decode import oks_nms

    images = []
    for i in range(len(got["image_id"])):
        valid = got["pose_valid"][i].astype(bool)
        kp = got["keypoints"][i][valid].astype(np.float64)
        scores = got["instance_scores"][i][valid].astype(np.float64)
        win = got["pose_windows"][i][valid].astype(np.float64)
        areas = (win[:, 2] - win[:, 0]) * (win[:, 3] - win[:, 1])
        keep = oks_nms(kp[..., :2], scores, areas, sigmas, nms_threshold)
        gv = got["gt_valid"][i].astype(bool)
        images.append(ImageKeypoints(
            gt_keypoints=got["gt_keypoints"][i][gv], gt_boxes=got["gt_boxes"][i][gv],
            gt_areas=got["gt_areas"][i][gv], gt_iscrowd=got["gt_iscrowd"][i][gv],
            dt_keypoints=kp[keep, :, :2], dt_scores=scores[keep]))
    return images


class KeypointApEvaluator:
    """config: data, pp (a pose_crop_eval pp string), detections (optional COCO results
    JSON of person boxes, looked up by image id), batch_size, sigmas (one per
    keypoint; default COCO's 17), nms_threshold (OKS above which the lower-scoring of
    two person instances of an image is dropped), pred. Yields keypoint AP, AP50,
    AP75, AP_medium, AP_large and AR; with exclude_ids (file of image ids or a
    list, e.g. near-duplicates of pre-training images) also `excluded_examples` and
    each metric again with `_dedup` over the other images."""

    KEYS = ("image_id", "pose_valid", "pose_windows", "gt_keypoints", "gt_boxes",
            "gt_areas", "gt_iscrowd", "gt_valid")

    def __init__(self, config: Any, context: EvalContext):
        self.config, self.ctx = config, context
        self.excluded = load_ids(config.exclude_ids)

    def run(self, variables: Any) -> Iterator[tuple[str, float]]:
        cfg = self.config
        pp = with_detections(cfg.pp, cfg.detections) if cfg.detections else cfg.pp
        got = collect_predictions(self.ctx, variables, cfg.data, pp, cfg.batch_size,
                                  keys=self.KEYS, outputs=("keypoints", "instance_scores"),
                                  pred=cfg.pred)
        sigmas = tuple(cfg.sigmas or COCO_SIGMAS)
        images = images_from_predictions(got, sigmas, cfg.nms_threshold)
        for suffix, kept in dedup_items(images, got["image_id"], self.excluded):
            if suffix:
                yield "excluded_examples", float(len(images) - len(kept))
            of_resample = keypoint_ap_of_resamples(kept, sigmas)
            metrics = of_resample(np.arange(len(kept)))
            for name in METRICS:
                yield f"{name}{suffix}", metrics[name]
            yield from interval_metrics(
                lambda idx, of_resample=of_resample, suffix=suffix: {
                    f"{k}{suffix}": v for k, v in of_resample(idx).items() if k in METRICS},
                len(kept), cfg.bootstrap)
