"""Preprocessing ops for tf.data, and the registry that names them.

An op factory takes a `PPContext` and the op's arguments from the
preprocessing string and returns a function from an example dict to an
example dict. Random ops draw from the example's `_seed` (stateless, so a
given seed and example position always give the same crop or flip,
whatever the parallelism).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from big_vision_like.registry import Registry
from input_pipeline.hierarchy import LabelHierarchy
from input_pipeline.keys import SEED_KEY

Example = dict[str, tf.Tensor]
Op = Callable[[Example], Example]


@dataclasses.dataclass(frozen=True)
class PPContext:
    """What ops may need beyond their arguments: the dataset's classes."""

    num_classes: int | None = None
    hierarchy: LabelHierarchy | None = None


@dataclasses.dataclass(frozen=True)
class OpFactory:
    build: Callable[..., Op]
    # Decoding ops are where a corrupt record fails; the pipeline can skip
    # and count failures there without hiding errors of later ops.
    decodes: bool = False


def _take_seed(data: Example) -> tf.Tensor:
    """A fresh stateless seed for one random op; advances the example's seed."""
    seeds = tf.random.experimental.stateless_split(data[SEED_KEY], num=2)
    data[SEED_KEY] = seeds[0]
    return seeds[1]


def _hw(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int) and not isinstance(size, bool):
        return size, size
    if (isinstance(size, (tuple, list)) and len(size) == 2
            and all(isinstance(x, int) and not isinstance(x, bool) for x in size)):
        return int(size[0]), int(size[1])
    raise ValueError(f"size={size!r}: give pixels, an int or (height, width).")


def _fits(img: tf.Tensor, h: int, w: int, op: str) -> list:
    """Control dependencies that fail with the op's name when the crop is larger than
    the image (TF's own message reads like a corrupt record)."""
    shape = tf.shape(img)
    return [tf.debugging.assert_greater_equal(
        shape[:2], tf.constant([h, w]),
        message=f"{op}({h}, {w}): the crop is larger than the image; resize the image "
                "first (e.g. resize or resize_small before the crop) or crop less")]


def decode(ctx: PPContext, channels: int = 3, key: str = "image") -> Op:
    def op(data):
        data[key] = tf.io.decode_image(data[key], channels=channels,
                                       expand_animations=False)
        return data
    return op


def resize(ctx: PPContext, size, method: str = "bilinear", antialias: bool = False,
           key: str = "image") -> Op:
    h, w = _hw(size)

    def op(data):
        img = data[key]
        # JPEGs often come at the target size already: skip the float round trip.
        data[key] = tf.cond(
            tf.reduce_all(tf.shape(img)[:2] == (h, w)),
            lambda: tf.ensure_shape(img, (h, w, None)),
            lambda: _cast_back(tf.image.resize(img, (h, w), method=method,
                                               antialias=antialias), img.dtype))
        return data
    return op


def resize_small(ctx: PPContext, smaller_size: int, method: str = "bilinear",
                 antialias: bool = False, key: str = "image") -> Op:
    """Resizes so the shorter side is `smaller_size`, keeping the aspect ratio."""
    def op(data):
        img = data[key]
        shape = tf.cast(tf.shape(img)[:2], tf.float32)
        scale = smaller_size / tf.reduce_min(shape)
        new = tf.cast(tf.round(shape * scale), tf.int32)
        data[key] = _cast_back(tf.image.resize(img, new, method=method,
                                               antialias=antialias), img.dtype)
        return data
    return op


def _cast_back(img: tf.Tensor, dtype: tf.DType) -> tf.Tensor:
    if dtype == tf.uint8:
        return tf.cast(tf.clip_by_value(tf.round(img), 0, 255), tf.uint8)
    return tf.cast(img, dtype)


def random_crop(ctx: PPContext, size, key: str = "image") -> Op:
    h, w = _hw(size)

    def op(data):
        img = data[key]
        with tf.control_dependencies(_fits(img, h, w, "random_crop")):
            data[key] = tf.image.stateless_random_crop(
                img, (h, w, tf.shape(img)[-1]), seed=_take_seed(data))
        return data
    return op


def central_crop(ctx: PPContext, size, key: str = "image") -> Op:
    h, w = _hw(size)

    def op(data):
        img = data[key]
        top = (tf.shape(img)[0] - h) // 2
        left = (tf.shape(img)[1] - w) // 2
        with tf.control_dependencies(_fits(img, h, w, "central_crop")):
            data[key] = tf.ensure_shape(img[top:top + h, left:left + w], (h, w, None))
        return data
    return op


def flip_lr(ctx: PPContext, key: str = "image") -> Op:
    def op(data):
        data[key] = tf.image.stateless_random_flip_left_right(
            data[key], seed=_take_seed(data))
        return data
    return op


def inception_crop(ctx: PPContext, size, area_min: float = 5, area_max: float = 100,
                   method: str = "bilinear", antialias: bool = False,
                   key: str = "image") -> Op:
    """Random area/aspect crop (Inception-style), resized to `size`."""
    h, w = _hw(size)

    def op(data):
        img = data[key]
        begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
            tf.shape(img), tf.zeros([0, 0, 4], tf.float32), seed=_take_seed(data),
            area_range=(area_min / 100, area_max / 100),
            min_object_covered=0, use_image_if_no_bounding_boxes=True)
        crop = tf.slice(img, begin, crop_size)
        data[key] = _cast_back(tf.image.resize(crop, (h, w), method=method,
                                               antialias=antialias), img.dtype)
        return data
    return op


def value_range(ctx: PPContext, vmin: float = -1, vmax: float = 1,
                in_min: float = 0, in_max: float = 255, key: str = "image") -> Op:
    def op(data):
        img = tf.cast(data[key], tf.float32)
        data[key] = vmin + (img - in_min) * ((vmax - vmin) / (in_max - in_min))
        return data
    return op


def multi_hot(ctx: PPContext, num_classes: int | None = None,
              fill_ancestors: bool = True, key: str = "labels",
              key_result: str | None = None) -> Op:
    """Class ids -> multi-hot float vector, ancestors switched on.

    Ancestors come from the context's hierarchy; a label id outside
    [0, num_classes) stops the pipeline with an error naming the id.
    """
    n = num_classes or ctx.num_classes
    if n is None:
        raise ValueError("multi_hot: num_classes is unknown; give multi_hot(N) "
                         "in the preprocessing string.")
    table = None
    if fill_ancestors and ctx.hierarchy is not None:
        if ctx.hierarchy.num_classes != n:
            raise ValueError(f"multi_hot({n}): the hierarchy has "
                             f"{ctx.hierarchy.num_classes} classes.")
        anc = ctx.hierarchy.ancestors()
        table = tf.RaggedTensor.from_row_lengths(
            np.concatenate(anc).astype(np.int64), [len(a) for a in anc])

    def op(data):
        ids = tf.cast(tf.reshape(data[key], [-1]), tf.int64)
        checks = [tf.debugging.assert_non_negative(
                      ids, message="label id out of range (negative)"),
                  tf.debugging.assert_less(
                      ids, tf.constant(n, tf.int64),
                      message=f"label id out of range: ids must be < num_classes={n}; "
                              "the config's num_classes does not match the dataset")]
        with tf.control_dependencies(checks):
            ids = tf.identity(ids)
        if table is not None:
            ids = tf.gather(table, ids).flat_values
        hot = tf.scatter_nd(ids[:, None], tf.ones_like(ids, tf.float32), [n])
        data[key_result or key] = tf.minimum(hot, 1.0)
        return data
    return op


def onehot(ctx: PPContext, num_classes: int | None = None, key: str = "label",
           key_result: str = "labels", on: float = 1.0, off: float = 0.0) -> Op:
    """A single class id -> one-hot vector (single-label datasets)."""
    n = num_classes or ctx.num_classes

    def op(data):
        label = tf.cast(data[key], tf.int64)
        check = tf.debugging.assert_less(
            label, tf.constant(n, tf.int64),
            message=f"label id out of range: ids must be < num_classes={n}")
        with tf.control_dependencies([check]):
            data[key_result] = tf.one_hot(label, n, on, off)
        return data
    return op


def object_label(ctx: PPContext, index: int = 0, key: str = "objects",
                 key_result: str = "label") -> Op:
    """The true class of one annotated object (`objects/label[index]`) as a
    single label: turns a detection-style dataset into a classification one."""
    def op(data):
        data[key_result] = tf.cast(data[key]["label"][index], tf.int64)
        return data
    return op


def object_count(ctx: PPContext, max: int = 3, min: int = 1, key: str = "objects",
                 key_result: str = "label") -> Op:
    """The number of annotated objects, clipped to [min, max], as class id count - min
    (classes: min, ..., max-or-more): a target the object labels do not name."""
    def op(data):
        n = tf.shape(data[key]["label"], out_type=tf.int64)[0]
        data[key_result] = tf.clip_by_value(n, min, max) - min
        return data
    return op


def keep(ctx: PPContext, *keys: str) -> Op:
    """Keeps the named keys (and the pipeline's own `_`-prefixed ones)."""
    def op(data):
        missing = [k for k in keys if k not in data]
        if missing:
            raise KeyError(f"keep{keys}: example has no {missing}; it has {sorted(data)}.")
        return {k: v for k, v in data.items() if k in keys or k.startswith("_")}
    return op


def rename(ctx: PPContext, **renames: str) -> Op:
    """rename(new=old, ...)."""
    def op(data):
        for new, old in renames.items():
            data[new] = data.pop(old)
        return data
    return op


def default_registry() -> Registry[OpFactory]:
    """A fresh registry of the standard ops."""
    reg: Registry[OpFactory] = Registry("preprocessing op")
    reg.register("decode", OpFactory(decode, decodes=True))
    from input_pipeline import pp_pose

    reg.register("pose_crop_train", OpFactory(pp_pose.pose_crop_train))
    reg.register("pose_crop_eval", OpFactory(pp_pose.pose_crop_eval))
    for fn in (resize, resize_small, random_crop, central_crop, flip_lr,
               inception_crop, value_range, multi_hot, onehot, object_label, object_count, keep,
               rename):
        reg.register(fn.__name__, OpFactory(fn))
    return reg
