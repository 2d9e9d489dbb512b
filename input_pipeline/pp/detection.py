"""Preprocessing ops for object detection (Faster R-CNN fine-tuning).

The training string resizes with the aspect ratio kept, flips, pads to a
fixed square and packs the objects into fixed-size targets:

    decode|resize_aspect(600, 1024)|flip_lr(boxes='objects/bbox')
    |pad_to(1024, boxes='objects/bbox')|central_crop(1024, boxes='objects/bbox')
    |value_range(-1, 1)|detection_pack(100)
    |keep('image', 'boxes', 'classes', 'box_valid', 'is_crowd', 'difficult', 'image_hw')

`pad_to` pads to AT LEAST its size, so its output has no static shape and
tf.data cannot batch it; the `central_crop` at the same size changes nothing
(the padded image is exactly 1024 square, as resize_aspect keeps both sides
<= max_size) but gives the image its static shape.

Evaluation drops the flip and also keeps `orig_hw`, `gt_*` and `image_id`:
the ground truth in the ORIGINAL image's coordinates, which COCO's and VOC's
AP are computed in. Boxes are normalised (ymin, xmin, ymax, xmax) throughout.
"""

from __future__ import annotations

import tensorflow as tf

from input_pipeline.keys import INDEX_KEY
from input_pipeline.pp import joint
from input_pipeline.pp.base import Example, Op, PPContext, pad_rows

# Where each dataset keeps its crowd / difficult flags (COCO keypoints and
# COCO instances spell crowd differently).
CROWD_KEYS = ("is_crowd", "iscrowd")
DIFFICULT_KEYS = ("is_difficult",)


def aspect_size(hw: tf.Tensor, min_size: int, max_size: int) -> tf.Tensor:
    """The [height, width] (int32) of TF OD API's keep_aspect_ratio_resizer.

    The shorter side becomes `min_size`, unless the longer one would then
    exceed `max_size`: then the longer side becomes `max_size`.
    """
    size = tf.cast(hw, tf.float32)
    large = tf.round(size * (min_size / tf.reduce_min(size)))
    small = tf.round(size * (max_size / tf.reduce_max(size)))
    return tf.cast(tf.where(tf.reduce_max(large) > max_size, small, large), tf.int32)


def resize_aspect(ctx: PPContext, min_size: int = 600, max_size: int = 1024,
                  method: str = "bilinear", antialias: bool = False,
                  keys: joint.Keys = None, *, key: str | None = None,
                  label_keys: joint.Keys = ("segmentation",),
                  boxes: str | None = None, keypoints: str | None = None) -> Op:
    """Resizes every key keeping the aspect ratio (see `aspect_size`).

    Records `orig_hw` (the size before) and `image_hw` (after), int32 [2].
    Normalised boxes and keypoints are unchanged by a resize: `boxes=` and
    `keypoints=` are accepted so every geometric op takes the same arguments.
    """
    if not (isinstance(min_size, int) and isinstance(max_size, int)
            and 0 < min_size <= max_size):
        raise ValueError(f"min_size={min_size!r}, max_size={max_size!r}: give pixels "
                         "with 0 < min_size <= max_size, e.g. resize_aspect(600, 1024).")
    t = joint.targets(keys, key, label_keys, boxes, keypoints)

    def op(data: Example) -> Example:
        maps, checks = joint.label_maps(data, t, "resize_aspect")
        old = tf.shape(maps[0])[:2]
        new = aspect_size(old, min_size, max_size)
        with tf.control_dependencies(checks):
            for k, m in zip(t.keys, maps):
                data[k] = joint.resize_map(m, new, method, antialias, t.is_label(k, m))
        data["orig_hw"] = tf.cast(old, tf.int32)
        data["image_hw"] = new
        return data
    return op


def _flag(objects: dict, names: tuple[str, ...], n: tf.Tensor) -> tf.Tensor:
    for name in names:
        if name in objects:
            return tf.cast(objects[name], tf.bool)
    return tf.zeros([n], tf.bool)


def _image_id(data: Example, id_key: str) -> tf.Tensor:
    if id_key in data:
        value = data[id_key]
        if value.dtype == tf.string:  # VOC's '000005'
            return tf.strings.to_number(value, tf.int64)
        return tf.cast(value, tf.int64)
    if INDEX_KEY in data:  # the example's position in its split
        return tf.cast(data[INDEX_KEY], tf.int64)
    raise KeyError(f"detection_pack: the example has neither {id_key!r} nor "
                   f"{INDEX_KEY!r} (it has {sorted(data)}); name the id with id_key=.")


def detection_pack(ctx: PPContext, max_objects: int = 100, key: str = "objects",
                   image_key: str = "image", id_key: str = "image_id") -> Op:
    """Packs `key`'s objects into fixed-size [max_objects, ...] targets.

    Training targets, normalised to the CURRENT image (after pad_to, which
    rescales 'objects/bbox' when given boxes=...): `boxes` [M, 4] float32,
    `classes` [M] int32 (0-based), `box_valid`, `is_crowd`, `difficult` [M]
    bool (False where the dataset has no such flag).

    Ground truth for evaluation, in the ORIGINAL image: `gt_boxes` [M, 4]
    normalised to it (the padding undone: the content is `image_hw` of the
    current size, as resize_aspect records), `gt_classes`, `gt_iscrowd`,
    `gt_difficult`, `gt_valid`, `gt_areas` (objects/area when the dataset has
    it, else the box area in original pixels, from `orig_hw`), and `image_id`
    (int64: the example's `id_key`, a digit string parsed, else its `_index`).

    Objects beyond `max_objects` are DROPPED (the first ones are kept); COCO
    has up to ~90 per image, so 100 loses none there. Padding rows are zero
    with `*_valid` False.

    synthetic_jft's objects are packed by family with `objects_to_level` first.
    """
    if not (isinstance(max_objects, int) and max_objects > 0):
        raise ValueError(f"max_objects={max_objects!r}: give a positive int.")
    m = max_objects

    def op(data: Example) -> Example:
        if key not in data or "bbox" not in data[key] or "label" not in data[key]:
            raise KeyError(f"detection_pack: the example has no {key!r} with 'bbox' and "
                           f"'label' (it has {sorted(data)}); name them with key=.")
        objects = data[key]
        boxes = tf.reshape(tf.cast(objects["bbox"], tf.float32), [-1, 4])
        n = tf.shape(boxes)[0]
        classes = tf.cast(objects["label"], tf.int32)
        crowd = _flag(objects, CROWD_KEYS, n)
        difficult = _flag(objects, DIFFICULT_KEYS, n)
        valid = tf.range(m) < n

        current = tf.shape(data[image_key])[:2]
        content = data.get("image_hw", current)
        orig = data.get("orig_hw", content)
        # pad_to scaled boxes by content / current; scale them back.
        ratio = tf.cast(current, tf.float32) / tf.cast(content, tf.float32)
        gt = tf.clip_by_value(boxes * tf.tile(ratio, [2]), 0.0, 1.0)
        if "area" in objects:
            areas = tf.cast(objects["area"], tf.float32)
        else:
            size = tf.cast(orig, tf.float32)
            areas = ((gt[:, 2] - gt[:, 0]) * size[0]) * ((gt[:, 3] - gt[:, 1]) * size[1])

        data.update({
            "boxes": pad_rows(boxes, m), "classes": pad_rows(classes, m), "box_valid": valid,
            "is_crowd": pad_rows(crowd, m), "difficult": pad_rows(difficult, m),
            "gt_boxes": pad_rows(gt, m), "gt_classes": pad_rows(classes, m),
            "gt_iscrowd": pad_rows(crowd, m), "gt_difficult": pad_rows(difficult, m),
            "gt_areas": pad_rows(areas, m), "gt_valid": valid,
            "image_id": _image_id(data, id_key),
            "image_hw": tf.cast(content, tf.int32), "orig_hw": tf.cast(orig, tf.int32),
        })
        return data
    return op


DETECTION_OPS = (resize_aspect, detection_pack)
