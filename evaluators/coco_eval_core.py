"""The core of pycocotools' COCOeval in NumPy, shared by box and keypoint AP.

Given one image's (and one category's) similarity matrix between detections and
ground truth (box IoU, keypoint OKS), `evaluate_image` reproduces
`COCOeval.evaluateImg`: detections sorted by score (stable) and cut to the most
detections kept, ground truth sorted real-first, greedy matching at every
threshold, crowd ground truth matched any number of times without counting,
ground truth outside the area range ignored, unmatched detections outside it
ignored. `accumulate` reproduces `COCOeval.accumulate` (101-point interpolated
precision, recall) for one category, area range and detection budget.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RECALL_POINTS = np.linspace(.0, 1.00, 101)
# COCOeval's thresholds .50:.05:.95 (index 0 is .5, index 5 is .75).
THRESHOLDS = np.linspace(.5, 0.95, 10)
ImageResult = dict[str, np.ndarray]


def evaluate_image(similarity: np.ndarray, dt_scores: np.ndarray, dt_areas: np.ndarray,
                   gt_areas: np.ndarray, gt_iscrowd: np.ndarray, gt_ignore: np.ndarray,
                   area_range: tuple[float, float], max_dets: int,
                   thresholds: np.ndarray = THRESHOLDS) -> ImageResult | None:
    """COCOeval.evaluateImg. similarity [D, G] in the given order of detections and
    ground truth; gt_ignore [G] marks ground truth ignored whatever its area (crowd,
    or no labelled keypoints). Returns None for an image with neither (as COCO), else
    the detections' scores (sorted), matched/ignored [T, D'] and gt_ignored [G]."""
    g, d = len(gt_areas), len(dt_scores)
    if g == 0 and d == 0:
        return None
    areas = np.asarray(gt_areas, np.float64).reshape(g)
    crowd = np.asarray(gt_iscrowd, bool).reshape(g)
    gt_ig = np.asarray(gt_ignore, bool).reshape(g) | (areas < area_range[0]) \
        | (areas > area_range[1])
    gt_order = np.argsort(gt_ig, kind="mergesort")
    dt_order = np.argsort(-np.asarray(dt_scores, np.float64), kind="mergesort")[:max_dets]
    scores = np.asarray(dt_scores, np.float64)[dt_order]
    sims = np.asarray(similarity, np.float64).reshape(d, g)[dt_order][:, gt_order]
    gt_ig, crowd = gt_ig[gt_order], crowd[gt_order]
    t, nd = len(thresholds), len(dt_order)
    gt_matched = np.zeros((t, g), bool)
    dt_matched = np.zeros((t, nd), bool)
    dt_ignore = np.zeros((t, nd), bool)
    for ti, thr in enumerate(thresholds):
        for di in range(nd):
            best, m = min(thr, 1 - 1e-10), -1
            for gi in range(g):
                if gt_matched[ti, gi] and not crowd[gi]:
                    continue
                # Ground truth is sorted real-first: once a real one matched,
                # ignored ones cannot take its place.
                if m > -1 and not gt_ig[m] and gt_ig[gi]:
                    break
                if sims[di, gi] < best:
                    continue
                best, m = sims[di, gi], gi
            if m == -1:
                continue
            dt_ignore[ti, di] = gt_ig[m]
            dt_matched[ti, di] = True
            gt_matched[ti, m] = True
    dt_area = np.asarray(dt_areas, np.float64).reshape(d)[dt_order]
    outside = (dt_area < area_range[0]) | (dt_area > area_range[1])
    dt_ignore |= ~dt_matched & outside[None]
    return {"scores": scores, "matched": dt_matched, "ignored": dt_ignore,
            "gt_ignored": gt_ig}


def accumulate(results: Sequence[ImageResult | None], num_thresholds: int = len(THRESHOLDS),
               max_dets: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """COCOeval.accumulate for one category and area range, keeping each image's
    `max_dets` best detections: (precision [T, R], recall [T]); -1 where undefined
    (no image, or no ground truth that counts)."""
    t = num_thresholds
    precision = -np.ones((t, len(RECALL_POINTS)))
    recall = -np.ones(t)
    results = [r for r in results if r is not None]
    if not results:
        return precision, recall
    cut = slice(None, max_dets)
    scores = np.concatenate([r["scores"][cut] for r in results])
    order = np.argsort(-scores, kind="mergesort")
    matched = np.concatenate([r["matched"][:, cut] for r in results], axis=1)[:, order]
    ignored = np.concatenate([r["ignored"][:, cut] for r in results], axis=1)[:, order]
    num_gt = int(np.count_nonzero(~np.concatenate([r["gt_ignored"] for r in results])))
    if num_gt == 0:
        return precision, recall
    tp = np.cumsum(matched & ~ignored, axis=1).astype(np.float64)
    fp = np.cumsum(~matched & ~ignored, axis=1).astype(np.float64)
    for ti in range(t):
        rc = tp[ti] / num_gt
        pr = tp[ti] / (fp[ti] + tp[ti] + np.spacing(1))
        recall[ti] = rc[-1] if len(rc) else 0
        # Precision made monotone from the right (the interpolated envelope).
        pr = np.maximum.accumulate(pr[::-1])[::-1] if len(pr) else pr
        idx = np.searchsorted(rc, RECALL_POINTS, side="left")
        q = np.zeros(len(RECALL_POINTS))
        ok = idx < len(pr)
        # pycocotools fills recall points up to the first one beyond reach.
        stop = int(np.argmin(ok)) if not ok.all() else len(ok)
        q[:stop] = pr[idx[:stop]]
        precision[ti] = q
    return precision, recall


def mean_defined(x: np.ndarray) -> float:
    """COCOeval.summarize's mean over the entries that are not -1 (-1 if none)."""
    x = np.asarray(x)
    x = x[x > -1]
    return float(x.mean()) if x.size else -1.0
