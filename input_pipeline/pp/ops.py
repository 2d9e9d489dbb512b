"""The general preprocessing ops: decoding, value range, label encodings, keys.

An op factory takes a `PPContext` and the op's arguments from the
preprocessing string and returns a function from an example dict to an
example dict. Random ops draw from the example's `_seed` (stateless, so a
given seed and example position always give the same crop or flip,
whatever the parallelism).

Single-tensor ops are written with `in_key_out_key` (pp.base): they take
`key=` (input) and `key_result=` (output) without plumbing of their own.
The geometric ops (resize, crops, flip, pad_to) live in `pp.joint`: they take
`keys=(...)` and move a label map, boxes and keypoints with the image.
`pp.registry` names them all.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from input_pipeline.pp.base import Op, PPContext, TensorFn, in_key_out_key


@in_key_out_key("image")
def decode(ctx: PPContext, channels: int = 3) -> TensorFn:
    return lambda img: tf.io.decode_image(img, channels=channels, expand_animations=False)


@in_key_out_key("image")
def value_range(ctx: PPContext, vmin: float = -1, vmax: float = 1,
                in_min: float = 0, in_max: float = 255) -> TensorFn:
    def fn(img):
        return vmin + (tf.cast(img, tf.float32) - in_min) * ((vmax - vmin) / (in_max - in_min))
    return fn


@in_key_out_key("labels")
def multi_hot(ctx: PPContext, num_classes: int | None = None,
              fill_ancestors: bool = True, fill_descendants: bool = False) -> TensorFn:
    """Class ids -> multi-hot float vector, ancestors switched on.

    Ancestors come from the context's hierarchy; a label id outside
    [0, num_classes) stops the pipeline with an error naming the id. With a
    class subset in the context, only its columns are kept, in its order.
    `fill_ancestors=False, fill_descendants=True` is for verified negatives:
    an image without 'Animal' has no 'Dog' either.
    """
    if fill_ancestors and fill_descendants:
        raise ValueError("multi_hot: fill_ancestors and fill_descendants are both on; "
                         "positives fill ancestors, negatives descendants: pass "
                         "fill_ancestors=False with fill_descendants=True.")
    n = num_classes or ctx.num_classes
    if n is None:
        raise ValueError("multi_hot: num_classes is unknown; give multi_hot(N) "
                         "in the preprocessing string.")
    columns = None
    if ctx.classes is not None:
        if max(ctx.classes) >= n:
            raise ValueError(f"multi_hot({n}): input.data.classes has class id "
                             f"{max(ctx.classes)}, outside the {n} classes.")
        columns = tf.constant(ctx.classes, tf.int64)
    table = None
    if (fill_ancestors or fill_descendants) and ctx.hierarchy is not None:
        if ctx.hierarchy.num_classes != n:
            raise ValueError(f"multi_hot({n}): the hierarchy has "
                             f"{ctx.hierarchy.num_classes} classes.")
        fill = ctx.hierarchy.ancestors() if fill_ancestors else ctx.hierarchy.descendants()
        table = tf.RaggedTensor.from_row_lengths(
            np.concatenate(fill).astype(np.int64), [len(a) for a in fill])

    def fn(labels):
        ids = tf.cast(tf.reshape(labels, [-1]), tf.int64)
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
        hot = tf.minimum(tf.scatter_nd(ids[:, None], tf.ones_like(ids, tf.float32), [n]),
                         1.0)
        return hot if columns is None else tf.gather(hot, columns)
    return fn


@in_key_out_key("label", "labels")
def onehot(ctx: PPContext, num_classes: int | None = None, on: float = 1.0,
           off: float = 0.0) -> TensorFn:
    """A single class id -> one-hot vector (single-label datasets)."""
    n = num_classes or ctx.num_classes
    if n is None:
        raise ValueError("onehot: num_classes is unknown; give onehot(N) "
                         "in the preprocessing string.")
    if num_classes is None and ctx.classes is not None:
        raise ValueError("onehot: input.data.classes (a class subset) restricts "
                         "multi-hot labels only; use multi_hot, or train on the whole "
                         "label space.")

    def fn(label):
        label = tf.cast(label, tf.int64)
        check = tf.debugging.assert_less(
            label, tf.constant(n, tf.int64),
            message=f"label id out of range: ids must be < num_classes={n}")
        with tf.control_dependencies([check]):
            return tf.one_hot(label, n, on, off)
    return fn


@in_key_out_key("objects", "label")
def object_label(ctx: PPContext, index: int = 0) -> TensorFn:
    """The true class of one annotated object (`objects/label[index]`) as a
    single label: turns a detection-style dataset into a classification one."""
    return lambda objects: tf.cast(objects["label"][index], tf.int64)


@in_key_out_key("objects", "label")
def object_count(ctx: PPContext, max: int = 3, min: int = 1) -> TensorFn:
    """The number of annotated objects, clipped to [min, max], as class id count - min
    (classes: min, ..., max-or-more): a target the object labels do not name."""
    def fn(objects):
        n = tf.shape(objects["label"], out_type=tf.int64)[0]
        return tf.clip_by_value(n, min, max) - min
    return fn


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


GENERAL_OPS = (value_range, multi_hot, onehot, object_label, object_count, keep, rename)
