"""COCO box AP in NumPy, its evaluator, and COCO results JSON writing.

`coco_ap` reproduces pycocotools' `COCOeval(iouType='bbox')` over all categories:
box IoU (against crowd ground truth: intersection over the detection's area),
ten IoU thresholds .50:.05:.95, area ranges all/small/medium/large taken from the
ground truth's `area` (COCO's annotation area, not necessarily its box's) and
from the detection's box area, 1/10/100 detections per image, crowd ground truth
matched without counting, 101-point interpolated precision averaged over
categories as `COCOeval.summarize` does. Matching and accumulation are shared
with keypoint AP (`evaluators.coco_eval_core`); the tests check it against
pycocotools, so runs need no pycocotools.

Boxes are (ymin, xmin, ymax, xmax) in image pixels, as everywhere in this project.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import jax
import numpy as np

from big_vision_like import filesystem as fs
from evaluators.bootstrap import interval_metrics
from evaluators.coco_eval_core import accumulate, evaluate_image, mean_defined
from evaluators.common import EvalContext, collect_predictions, dedup_items
from input_pipeline.image_ids import load_ids

AREA_RANGES = {"all": (0.0, 1e5 ** 2), "small": (0.0, 32.0 ** 2),
               "medium": (32.0 ** 2, 96.0 ** 2), "large": (96.0 ** 2, 1e5 ** 2)}
MAX_DETS = (1, 10, 100)
DETECTION_OUTPUTS = ("detection_boxes", "detection_scores", "detection_classes",
                     "detection_valid")
METRICS = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "AR1", "AR10",
           "AR100", "AR_small", "AR_medium", "AR_large")


@dataclasses.dataclass
class ImageBoxes:
    """One image's ground truth and detections, boxes [N, 4] (ymin, xmin, ymax, xmax)
    pixels. gt_classes [G] and dt_classes [D] are class indices; gt_areas [G]
    (None: the boxes' areas); gt_iscrowd [G] (None: no crowd); dt_scores [D]."""

    gt_boxes: np.ndarray
    gt_classes: np.ndarray
    dt_boxes: np.ndarray
    dt_scores: np.ndarray
    dt_classes: np.ndarray
    gt_areas: np.ndarray | None = None
    gt_iscrowd: np.ndarray | None = None


def _xywh(boxes: np.ndarray) -> np.ndarray:
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.stack([b[:, 1], b[:, 0], b[:, 3] - b[:, 1], b[:, 2] - b[:, 0]], -1)


def box_iou(dt: np.ndarray, gt: np.ndarray, gt_iscrowd: np.ndarray) -> np.ndarray:
    """[D, G] IoU of boxes (ymin, xmin, ymax, xmax) as pycocotools' maskApi computes it:
    from [x, y, w, h], and over the detection's area alone for crowd ground truth."""
    d, g = _xywh(dt), _xywh(gt)
    lo = np.maximum(d[:, None, :2], g[None, :, :2])
    hi = np.minimum(d[:, None, :2] + d[:, None, 2:], g[None, :, :2] + g[None, :, 2:])
    wh = hi - lo
    inter = np.where((wh > 0).all(-1), wh[..., 0] * wh[..., 1], 0.0)
    d_area, g_area = d[:, 2] * d[:, 3], g[:, 2] * g[:, 3]
    union = np.where(np.asarray(gt_iscrowd, bool)[None, :], d_area[:, None],
                     d_area[:, None] + g_area[None, :] - inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(inter > 0, inter / union, 0.0)


def _check(i: int, im: ImageBoxes) -> None:
    for name, n in (("gt", len(im.gt_classes)), ("dt", len(im.dt_classes))):
        boxes = np.asarray(getattr(im, f"{name}_boxes"))
        if boxes.size and (boxes.ndim != 2 or boxes.shape != (n, 4)):
            raise ValueError(f"image {i}: {name}_boxes has shape {boxes.shape} but "
                             f"{name}_classes has {n} entries; give one (ymin, xmin, ymax, "
                             "xmax) box per class.")
    if len(im.dt_scores) != len(im.dt_classes):
        raise ValueError(f"image {i}: {len(im.dt_scores)} dt_scores for "
                         f"{len(im.dt_classes)} detections; give one score per detection.")


PerCategory = list[dict[str, list]]  # [category][area] -> per-image results


def _match(images: Sequence[ImageBoxes], budget: int) -> PerCategory:
    """COCOeval.evaluate: every image's matches, per category and area range."""
    for i, im in enumerate(images):
        _check(i, im)
    classes = sorted({int(c) for im in images
                      for c in (*np.asarray(im.gt_classes).ravel(),
                                *np.asarray(im.dt_classes).ravel())})
    per_cat: PerCategory = []
    for c in classes:
        by_area: dict[str, list] = {a: [] for a in AREA_RANGES}
        for im in images:
            gm = np.asarray(im.gt_classes).ravel() == c
            dm = np.asarray(im.dt_classes).ravel() == c
            gt = np.asarray(im.gt_boxes, np.float64).reshape(-1, 4)[gm]
            dt = np.asarray(im.dt_boxes, np.float64).reshape(-1, 4)[dm]
            g = len(gt)
            crowd = (np.zeros(g, bool) if im.gt_iscrowd is None
                     else np.asarray(im.gt_iscrowd, bool).ravel()[gm])
            areas = ((gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1]) if im.gt_areas is None
                     else np.asarray(im.gt_areas, np.float64).ravel()[gm])
            scores = np.asarray(im.dt_scores, np.float64).ravel()[dm]
            # COCOeval computes IoU for the image's `budget` best detections only.
            keep = np.argsort(-scores, kind="mergesort")[:budget]
            dt, scores = dt[keep], scores[keep]
            sims = box_iou(dt, gt, crowd)
            dt_areas = (dt[:, 2] - dt[:, 0]) * (dt[:, 3] - dt[:, 1])
            for a, rng in AREA_RANGES.items():
                by_area[a].append(evaluate_image(sims, scores, dt_areas, areas, crowd, crowd,
                                                 rng, budget))
        per_cat.append(by_area)
    return per_cat


def _summarize(per_cat: PerCategory, max_dets: Sequence[int],
               idx: np.ndarray | None = None) -> dict[str, float]:
    """COCOeval.accumulate + summarize over the images `idx` (all when None; repeats
    count as copies). A category absent from `idx` has no results and drops out of
    the means, as it would from a COCOeval of those images alone."""
    budget = int(max_dets[-1])
    cache: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}

    def stats(area: str, m: int) -> tuple[np.ndarray, np.ndarray]:
        if (area, m) not in cache:
            got = [accumulate(r[area] if idx is None else [r[area][i] for i in idx],
                              max_dets=m) for r in per_cat]
            # [T, R, K] and [T, K], as COCOeval's precision and recall arrays.
            cache[area, m] = ((np.stack([p for p, _ in got], -1),
                               np.stack([r for _, r in got], -1)) if got else
                              (-np.ones((1, 1, 1)), -np.ones((1, 1))))
        return cache[area, m]

    out: dict[str, float] = {}
    p, _ = stats("all", budget)
    out["AP"], out["AP50"], out["AP75"] = (mean_defined(p), mean_defined(p[:1]),
                                           mean_defined(p[5:6]))
    for a in ("small", "medium", "large"):
        out[f"AP_{a}"] = mean_defined(stats(a, budget)[0])
    for m in max_dets:
        out[f"AR{m}"] = mean_defined(stats("all", int(m))[1])
    for a in ("small", "medium", "large"):
        out[f"AR_{a}"] = mean_defined(stats(a, budget)[1])
    return out


def coco_ap(images: Sequence[ImageBoxes], max_dets: Sequence[int] = MAX_DETS
            ) -> dict[str, float]:
    """COCO's 12 box metrics (`METRICS`: AP, AP50, AP75, AP_small/medium/large, AR1,
    AR10, AR100, AR_small/medium/large; -1 where nothing can be scored, as COCO).
    `max_dets` are COCOeval's maxDets (the last is the per-image budget and the one of
    AP and AR by area)."""
    return _summarize(_match(images, int(max_dets[-1])), max_dets)


def coco_ap_of_resamples(images: Sequence[ImageBoxes], max_dets: Sequence[int] = MAX_DETS
                         ) -> Callable[[np.ndarray], dict[str, float]]:
    """idx -> `coco_ap([images[i] for i in idx])`, matching each image once: an image's
    matches do not depend on the other images, so a bootstrap resample only
    re-accumulates (11x faster per resample on 1,000 random images; equal to the
    recomputation, tested)."""
    per_cat = _match(images, int(max_dets[-1]))
    return lambda idx: _summarize(per_cat, max_dets, np.asarray(idx))


def _category_id(category_ids: Any, c: int) -> int:
    if hasattr(category_ids, "keys"):
        # A config's mapping has string keys.
        keys = {str(k): k for k in category_ids.keys()}
        if str(c) in keys:
            return int(category_ids[keys[str(c)]])
    elif 0 <= c < len(category_ids):
        return int(category_ids[c])
    raise ValueError(f"write_coco_results: class {c} has no entry in category_ids; give a "
                     "category id for every class.")


def write_coco_results(path: str, image_ids: np.ndarray, boxes: np.ndarray,
                       scores: np.ndarray, classes: np.ndarray,
                       category_ids: Sequence[int] | Mapping[int, int] | None = None
                       ) -> int:
    """Write detections as a COCO results JSON ([{image_id, category_id, bbox: [x, y,
    w, h] pixels to 1/1000, score}]); returns how many. One row per detection: image_ids [M],
    boxes [M, 4] (ymin, xmin, ymax, xmax) pixels, scores [M], classes [M] 0-based.
    category_ids maps class -> dataset category id (a list, or a mapping with int or
    str keys; COCO's ids are not contiguous);
    None writes class + 1 (COCO's ids start at 1, so a one-class person detector
    writes COCO's person id 1)."""
    image_ids = np.asarray(image_ids).ravel()
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    scores, classes = np.asarray(scores).ravel(), np.asarray(classes).ravel()
    if not len(image_ids) == len(b) == len(scores) == len(classes):
        raise ValueError(f"write_coco_results: {len(image_ids)} image ids, {len(b)} boxes, "
                         f"{len(scores)} scores and {len(classes)} classes; give one of "
                         "each per detection.")
    rows = []
    for img, box, s, c in zip(image_ids, _xywh(b), scores, classes):
        c = int(c)
        cat = c + 1 if category_ids is None else _category_id(category_ids, c)
        rows.append({"image_id": int(img), "category_id": cat,
                     "bbox": [round(float(v), 3) for v in box], "score": float(s)})
    fs.write_atomic(path, json.dumps(rows))
    return len(rows)


def image_records(got: Mapping[str, np.ndarray], gt_fields: Mapping[str, type]
                  ) -> list[dict[str, np.ndarray]]:
    """Per-image ground truth and detections from `collect_predictions` of a detection
    task, boxes in pixels (they come normalised to the original image), padding
    dropped; `gt_fields` names more per-object ground truth and its dtype."""
    records = []
    for i in range(len(got["image_id"])):
        h, w = (float(v) for v in np.asarray(got["orig_hw"][i]).ravel()[:2])
        scale = np.array([h, w, h, w])
        gv = got["gt_valid"][i].astype(bool)
        dv = got["detection_valid"][i].astype(bool)
        records.append({
            "gt_boxes": got["gt_boxes"][i][gv].astype(np.float64) * scale,
            "gt_classes": got["gt_classes"][i][gv].astype(np.int64),
            "dt_boxes": got["detection_boxes"][i][dv].astype(np.float64) * scale,
            "dt_scores": got["detection_scores"][i][dv].astype(np.float64),
            "dt_classes": got["detection_classes"][i][dv].astype(np.int64),
            **{k: got[k][i][gv].astype(t) for k, t in gt_fields.items()}})
    return records


def images_from_predictions(got: Mapping[str, np.ndarray]) -> list[ImageBoxes]:
    return [ImageBoxes(**r) for r in image_records(
        got, {"gt_areas": np.float64, "gt_iscrowd": bool})]


def collect_detections(ctx: EvalContext, variables: Any, cfg: Any,
                       keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Detections and the batch `keys` of one pass over `cfg.data`, and (with
    `cfg.results_json`) the detections written as a COCO results JSON."""
    got = collect_predictions(ctx, variables, cfg.data, cfg.pp, cfg.batch_size,
                              keys=keys, outputs=DETECTION_OUTPUTS,
                              pred=cfg.pred)
    # Every process holds all predictions; one writes.
    if cfg.results_json and jax.process_index() == 0:
        images = images_from_predictions(got)

        def joined(field: str) -> np.ndarray:
            return np.concatenate([np.asarray(getattr(im, field)) for im in images]
                                  or [np.zeros(0)])

        ids = np.concatenate([np.full(len(im.dt_scores), got["image_id"][i])
                              for i, im in enumerate(images)] or [np.zeros(0, np.int64)])
        write_coco_results(cfg.results_json, ids, joined("dt_boxes").reshape(-1, 4),
                           joined("dt_scores"), joined("dt_classes"), cfg.category_ids)
    return got


class CocoApEvaluator:
    """config: data, pp, batch_size, pred (a predict function giving detection_boxes
    [B, D, 4] normalised to the original image, detection_scores, detection_classes
    (0-based), detection_valid), results_json (optional: also write the detections
    there as a COCO results JSON), category_ids (class -> dataset category id for it).
    Batches carry image_id, orig_hw [B, 2] pixels, gt_boxes [B, G, 4] normalised to
    the original image, gt_classes, gt_iscrowd, gt_areas (pixels), gt_valid. Yields
    COCO's 12 box metrics (`METRICS`); with exclude_ids (file of image ids or a
    list, e.g. near-duplicates of pre-training images) also `excluded_examples` and
    each metric again with `_dedup` over the other images."""

    KEYS = ("image_id", "orig_hw", "gt_boxes", "gt_classes", "gt_iscrowd", "gt_areas",
            "gt_valid")

    def __init__(self, config: Any, context: EvalContext):
        self.config, self.ctx = config, context
        self.excluded = load_ids(config.exclude_ids)

    def run(self, variables: Any) -> Iterator[tuple[str, float]]:
        got = collect_detections(self.ctx, variables, self.config, self.KEYS)
        images = images_from_predictions(got)
        for suffix, kept in dedup_items(images, got["image_id"], self.excluded):
            if suffix:
                yield "excluded_examples", float(len(images) - len(kept))
            of_resample = coco_ap_of_resamples(kept)
            metrics = of_resample(np.arange(len(kept)))
            for name in METRICS:
                yield f"{name}{suffix}", metrics[name]
            yield from interval_metrics(
                lambda idx, of_resample=of_resample, suffix=suffix: {
                    f"{k}{suffix}": v for k, v in of_resample(idx).items() if k in METRICS},
                len(kept), self.config.bootstrap)
