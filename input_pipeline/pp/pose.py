"""Person crops for pose (G-RMI): one random person per training example, every
person of an image for evaluation.

A person box is extended to the crop's aspect ratio (the shorter side grows), then
enlarged by `context` (G-RMI: 1.25), and the image inside it is resized to the
crop size; parts outside the image are black. Windows are in continuous image
pixels (pixel i covers [i, i + 1)), so a point at pixel coordinate y of the image
lies at (y - top) / (bottom - top) of its crop.

Boxes are [N, 4] normalised (ymin, xmin, ymax, xmax); keypoints [N, K, 3]
(y, x normalised to the image, visibility). Person boxes for evaluation are the
ground truth's, or a COCO results JSON of detections (`detections=path`), looked
up by image id.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from big_vision_like import filesystem as fs
from input_pipeline.pp.base import Example, Op, PPContext, hw, pad_rows, take_seed


def _image_hw(img: tf.Tensor) -> tf.Tensor:
    return tf.cast(tf.shape(img)[:2], tf.float32)


def person_windows(boxes_px: tf.Tensor, crop_hw: tuple[int, int], context: float
                   ) -> tf.Tensor:
    """[N, 4] boxes in pixels -> crop windows in pixels: the crop's aspect ratio,
    enlarged by `context`, at least one pixel."""
    centre = (boxes_px[:, :2] + boxes_px[:, 2:]) / 2
    h = tf.maximum(boxes_px[:, 2] - boxes_px[:, 0], 1.0)
    w = tf.maximum(boxes_px[:, 3] - boxes_px[:, 1], 1.0)
    aspect = crop_hw[0] / crop_hw[1]
    h = tf.maximum(h, w * aspect) * context
    half = tf.stack([h, h / aspect], -1) / 2
    return tf.concat([centre - half, centre + half], -1)


def crop_windows(img: tf.Tensor, windows: tf.Tensor, crop_hw: tuple[int, int]) -> tf.Tensor:
    """[N, h, w, C] float crops of `img` at pixel `windows`; crop pixel centres sample
    the window at (i + .5) / h of its height, bilinearly."""
    img_hw = _image_hw(img)
    size = windows[:, 2:] - windows[:, :2]
    crop = tf.constant(crop_hw, tf.float32)
    # crop_and_resize samples pixel index box * (H - 1) + i * span * (H - 1) / (h - 1).
    start = (windows[:, :2] + 0.5 * size / crop - 0.5) / tf.maximum(img_hw - 1, 1.0)
    span = size * (crop - 1) / crop / tf.maximum(img_hw - 1, 1.0)
    boxes = tf.concat([start, start + span], -1)
    images = tf.cast(img, tf.float32)[None]
    return tf.image.crop_and_resize(images, boxes, tf.zeros(tf.shape(boxes)[:1], tf.int32),
                                    crop_hw, extrapolation_value=0.0)


def to_crop(keypoints: tf.Tensor, windows: tf.Tensor, image_hw: tf.Tensor) -> tf.Tensor:
    """Keypoints [N, K, 3] normalised to the image -> normalised to each window; those
    outside their window get visibility 0."""
    px = keypoints[..., :2] * image_hw
    yx = (px - windows[:, None, :2]) / (windows[:, None, 2:] - windows[:, None, :2])
    inside = tf.reduce_all((yx >= 0) & (yx < 1), -1)
    vis = tf.where(inside, keypoints[..., 2], 0.0)
    return tf.concat([yx, vis[..., None]], -1)


def _objects(data: Example, key: str) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    objs = data[key]
    boxes = tf.reshape(tf.cast(objs["bbox"], tf.float32), [-1, 4])
    kps = tf.cast(objs["keypoints"], tf.float32)
    crowd = (tf.cast(objs["iscrowd"], tf.bool) if "iscrowd" in objs
             else tf.zeros(tf.shape(boxes)[:1], tf.bool))
    return boxes, kps, crowd


def _flip(img: tf.Tensor, kp: tf.Tensor, perm: Sequence[int]) -> tuple[tf.Tensor, tf.Tensor]:
    kp = tf.gather(kp, perm, axis=-2)
    return img[:, ::-1], tf.stack([kp[..., 0], 1.0 - kp[..., 1], kp[..., 2]], -1)


def _flip_perm(flip_pairs: Sequence[Sequence[int]] | None, k: int | None) -> list[int] | None:
    if flip_pairs is None:
        return None
    if k is None:
        raise ValueError("flip_pairs needs a static number of keypoints in the dataset.")
    perm = list(range(k))
    for a, b in flip_pairs:
        if not (0 <= a < k and 0 <= b < k):
            raise ValueError(f"flip pair ({a}, {b}) is outside the {k} keypoints.")
        perm[a], perm[b] = b, a
    return perm


def pose_crop_train(ctx: PPContext, size, context: float = 1.25, key: str = "objects",
                    flip_pairs: Sequence[Sequence[int]] | None = None) -> Op:
    """One person per example, chosen with the example's seed among the non-crowd
    ones with a labelled keypoint (else any; else the whole image): `image`
    becomes its crop, `keypoints` [K, 3] its keypoints in the crop. With
    `flip_pairs` ((left, right), ...) the crop is mirrored at random, left and
    right keypoints swapped."""
    crop_hw = hw(size)

    def op(data):
        img = data["image"]
        boxes, kps, crowd = _objects(data, key)
        k = kps.shape[-2]
        perm = _flip_perm(flip_pairs, k)
        good = tf.reduce_any(kps[..., 2] > 0, -1) & ~crowd
        candidates = tf.where(good)[:, 0]
        candidates = tf.cond(tf.size(candidates) > 0, lambda: candidates,
                             lambda: tf.range(tf.shape(boxes, out_type=tf.int64)[0]))
        n = tf.size(candidates)
        pick = tf.random.stateless_uniform([], take_seed(data), 0, tf.maximum(n, 1), tf.int32)
        some = n > 0
        idx = tf.gather(candidates, tf.minimum(pick, tf.maximum(n - 1, 0)))
        box = tf.cond(some, lambda: tf.gather(boxes, idx), lambda: tf.constant([0., 0, 1, 1]))
        kp = tf.cond(some, lambda: tf.gather(kps, idx),
                     lambda: tf.zeros(tf.shape(kps)[1:], tf.float32))
        img_hw = _image_hw(img)
        windows = person_windows(box[None] * tf.tile(img_hw, [2]), crop_hw, context)
        crop = crop_windows(img, windows, crop_hw)[0]
        kp = to_crop(kp[None], windows, img_hw)[0]
        if perm is not None:
            flip = tf.random.stateless_uniform([], take_seed(data)) < 0.5
            crop, kp = tf.cond(flip, lambda: _flip(crop, kp, perm), lambda: (crop, kp))
        data["image"] = tf.ensure_shape(crop, (*crop_hw, None))
        data["keypoints"] = tf.ensure_shape(kp, (k, 3))
        return data
    return op


class Detections:
    """Person boxes of a COCO results JSON ([{image_id, category_id, bbox: [x, y, w,
    h] pixels, score}, ...]): per image the `max_objects` best, as lookup tables."""

    def __init__(self, path: str, max_objects: int, category_id: int | None = 1,
                 min_score: float = 0.0):
        try:
            with fs.open(path) as f:
                rows = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"detections={path!r}: cannot read a COCO results JSON "
                             f"({e}).") from None
        if not isinstance(rows, list) or any(
                not {"image_id", "bbox", "score"} <= set(r) for r in rows):
            raise ValueError(f"detections={path!r}: expected a COCO results list of "
                             "{image_id, category_id, bbox, score} records.")
        per_image = collections.defaultdict(list)
        for r in rows:
            if (category_id is None or r.get("category_id") == category_id) \
                    and r["score"] >= min_score:
                per_image[int(r["image_id"])].append(r)
        ids = np.asarray(sorted(per_image), np.int64)
        boxes = np.zeros((len(ids) + 1, max_objects, 4), np.float32)
        scores = np.zeros((len(ids) + 1, max_objects), np.float32)
        counts = np.zeros(len(ids) + 1, np.int32)
        for i, image_id in enumerate(ids):
            best = sorted(per_image[image_id], key=lambda r: -r["score"])[:max_objects]
            for j, r in enumerate(best):
                x, y, w, h = r["bbox"]
                boxes[i, j] = (y, x, y + h, x + w)
                scores[i, j] = r["score"]
            counts[i] = len(best)
        self.boxes, self.scores, self.counts = map(tf.constant, (boxes, scores, counts))
        # Images without detections find the last row: no boxes.
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(ids),
                                                tf.range(len(ids), dtype=tf.int64)),
            default_value=len(ids))

    def lookup(self, image_id: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        row = self.table.lookup(tf.cast(image_id, tf.int64))
        return self.boxes[row], self.scores[row], self.counts[row]


MAX_GT = 100  # annotations per image kept for keypoint AP (COCO: at most ~30 people)


def pose_crop_eval(ctx: PPContext, size, max_objects: int = 20, context: float = 1.25,
                   key: str = "objects", detections: str | None = None,
                   max_gt: int | None = None, image_id_key: str = "image_id",
                   category_id: int | None = 1, min_score: float = 0.0) -> Op:
    """Every person of an image: `image` [M, h, w, C] crops (M = max_objects, zeros
    beyond the persons), `pose_windows` [M, 4] (pixels), `pose_valid` [M],
    `pose_box_scores` [M]; ground truth for keypoint AP, padded to `max_gt`:
    `gt_keypoints` [G, K, 3] (y, x pixels, visibility), `gt_boxes` [G, 4] pixels,
    `gt_areas` (`objects/area`, else the box's), `gt_iscrowd`, `gt_valid`; and
    `image_id`. Persons are the non-crowd ground truth, or with `detections` (a COCO
    results JSON) the image's `max_objects` best detections.

    Keypoint AP scores every annotation, as pycocotools does: G is `max_gt`
    (default MAX_GT, more than COCO's most crowded image holds), and an image with
    more annotations stops the evaluation with an error naming max_gt, never cut.
    Persons beyond `max_objects` are not cropped (they count as missed)."""
    crop_hw = hw(size)
    max_gt = max_gt or MAX_GT
    dets = Detections(detections, max_objects, category_id, min_score) if detections \
        else None

    def op(data):
        img = data["image"]
        if image_id_key not in data:
            raise KeyError(f"pose_crop_eval: examples have no {image_id_key!r} (keys: "
                           f"{sorted(data)}); set image_id_key=... to the image id's key.")
        boxes, kps, crowd = _objects(data, key)
        img_hw = _image_hw(img)
        scale = tf.tile(img_hw, [2])
        boxes_px = boxes * scale
        if dets is None:
            people = tf.boolean_mask(boxes_px, ~crowd)[:max_objects]
            count = tf.shape(people)[0]
            box_scores = tf.ones([count], tf.float32)
        else:
            people, box_scores, count = dets.lookup(data[image_id_key])
        people = pad_rows(people, max_objects)
        valid = tf.range(max_objects) < count
        windows = person_windows(people, crop_hw, context)
        crops = crop_windows(img, windows, crop_hw)
        crops = crops * tf.cast(valid, tf.float32)[:, None, None, None]
        objs = data[key]
        area = (tf.cast(objs["area"], tf.float32) if "area" in objs
                else (boxes_px[:, 2] - boxes_px[:, 0]) * (boxes_px[:, 3] - boxes_px[:, 1]))
        gt_kp = tf.concat([kps[..., :2] * img_hw, kps[..., 2:]], -1)
        n_gt = tf.shape(boxes)[0]
        check = tf.debugging.assert_less_equal(
            n_gt, max_gt, message=f"pose_crop_eval: an image has more than max_gt={max_gt} "
            "annotations; keypoint AP must score every one: give pose_crop_eval(..., "
            "max_gt=N) with N at least the most an image has")
        with tf.control_dependencies([check]):
            n_gt = tf.identity(n_gt)
        data["image"] = tf.ensure_shape(crops, (max_objects, *crop_hw, None))
        data["pose_windows"] = windows
        data["pose_valid"] = valid
        data["pose_box_scores"] = pad_rows(tf.reshape(box_scores, [-1]), max_objects)
        data["gt_keypoints"] = pad_rows(gt_kp, max_gt)
        data["gt_boxes"] = pad_rows(boxes_px, max_gt)
        data["gt_areas"] = pad_rows(area, max_gt)
        data["gt_iscrowd"] = pad_rows(crowd, max_gt)
        data["gt_valid"] = tf.range(max_gt) < n_gt
        data["image_id"] = tf.cast(data[image_id_key], tf.int64)
        return data
    return op
