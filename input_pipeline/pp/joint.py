"""Geometric ops that move an image and everything drawn on it together.

Segmentation, detection and pose fine-tuning need the label map, the boxes and
the keypoints to follow the image through every crop, flip and resize. Each op
here transforms all its targets from ONE draw of the example's seed, so they
cannot drift apart, and with only `keys=('image',)` it is the plain image op.

Arguments the ops share (names after big_vision's `keys=`; `key='x'` is kept
as a shorthand for `keys=('x',)` so older strings still work):

  keys        the [H, W, C] maps to transform, default ('image',). All must
              have the same height and width (checked when the op runs).
  label_keys  those of `keys` that hold class ids, default ('segmentation',);
              a map of a signed integer dtype counts as one too. Label maps
              are resized nearest-neighbour (never interpolated) and padded
              with 255, the ignore label, so 255 survives every op.
  boxes       a '/'-path into the example to [N, 4] normalised boxes
              (ymin, xmin, ymax, xmax), e.g. boxes='objects/bbox'.
  keypoints   a '/'-path to [N, K, 3] keypoints (y, x normalised, visibility),
              e.g. keypoints='objects/keypoints'.

Coordinates are normalised to the map: pixel (i, j) of an H x W map covers
[i/H, (i+1)/H) x [j/W, (j+1)/W). What each op does to them:

  random_crop, central_crop, inception_crop: shift and scale to the window;
      boxes are clipped to [0, 1] (a box outside the window stays, with zero
      area, so `objects/*` keep their length); a keypoint that leaves the
      window gets visibility 0 (its coordinates are kept).
  flip_lr(keypoint_pairs=((l, r), ...)): x -> 1 - x; boxes become
      (ymin, 1 - xmax, ymax, 1 - xmin); keypoint ids l and r swap, so a
      'left eye' stays the left eye of the flipped person.
  resize, resize_small: coordinates are unchanged.
  pad_to(size, fill=0): pads bottom and right up to `size` (image with
      `fill`, label maps with `label_fill`=255); coordinates scale by the old
      size over the new one. `pad_to(S)|random_crop(S)` crops with padding.

Example: "decode|decode(1, key='segmentation')|random_crop(32, keys=('image',
'segmentation'), boxes='objects/bbox')|flip_lr(keys=('image', 'segmentation'))".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from input_pipeline.keys import IGNORE_LABEL
from input_pipeline.pp.base import Example, Op, PPContext, cast_back, hw, take_seed

Keys = str | Sequence[str] | None


@dataclasses.dataclass(frozen=True)
class Targets:
    keys: tuple[str, ...]
    label_keys: tuple[str, ...]
    boxes: str | None
    keypoints: str | None

    def is_label(self, key: str, tensor: tf.Tensor) -> bool:
        dtype = tensor.dtype
        return key in self.label_keys or (dtype.is_integer and not dtype.is_unsigned)


def _names(value: Keys, what: str) -> tuple[str, ...]:
    names = (value,) if isinstance(value, str) else tuple(value or ())
    if not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
        raise ValueError(f"{what}={value!r}: give distinct key names, e.g. "
                         f"{what}=('image', 'segmentation').")
    return names


def targets(keys: Keys, key: str | None, label_keys: Keys, boxes: str | None,
             keypoints: str | None) -> Targets:
    if key is not None and keys is not None:
        raise ValueError(f"key={key!r} and keys={keys!r}: give one of them.")
    names = _names(keys if key is None else key, "keys") or ("image",)
    for what, path in (("boxes", boxes), ("keypoints", keypoints)):
        if path is not None and not (isinstance(path, str) and path.strip("/")):
            raise ValueError(f"{what}={path!r}: give a '/'-path into the example, "
                             f"e.g. {what}='objects/{'bbox' if what == 'boxes' else what}'.")
    return Targets(names, _names(label_keys, "label_keys"), boxes, keypoints)


def get_path(data: Example, path: str) -> tf.Tensor:
    node = data
    for part in path.split("/"):
        if not isinstance(node, dict) or part not in node:
            have = sorted(node) if isinstance(node, dict) else type(node).__name__
            raise KeyError(f"the example has no {path!r} (no {part!r} in {have}).")
        node = node[part]
    return node


def _set(data: Example, path: str, value: tf.Tensor) -> None:
    *parents, leaf = path.split("/")
    node = data
    for part in parents:
        node[part] = dict(node[part])  # a copy: the caller's nested dicts stay as given
        node = node[part]
    node[leaf] = value


def label_maps(data: Example, t: Targets, op: str) -> tuple[list[tf.Tensor], list]:
    """The maps of `t.keys`, and checks that they share one height and width."""
    maps = []
    for k in t.keys:
        if k not in data:
            raise KeyError(f"{op}: the example has no {k!r} (it has {sorted(data)}); "
                           "fix keys=(...).")
        if data[k].shape.rank not in (None, 3):
            raise ValueError(f"{op}: {k!r} has shape {data[k].shape}; maps must be "
                             "[height, width, channels].")
        maps.append(data[k])
    first = tf.shape(maps[0])[:2]
    checks = [tf.debugging.assert_equal(
        tf.shape(m)[:2], first,
        message=f"{op}: {k!r} and {t.keys[0]!r} differ in height or width; joint ops "
                "need maps of one size (resize them to the image first)")
        for k, m in zip(t.keys[1:], maps[1:])]
    return maps, checks


def _affine_coords(data: Example, t: Targets, scale: tf.Tensor, shift: tf.Tensor,
                   in_window: bool) -> None:
    """(y, x) -> (y, x) * scale + shift for boxes and keypoints.

    `in_window`: the result is a crop, so boxes are clipped to it and keypoints
    outside it become invisible.
    """
    if t.boxes is not None:
        boxes = get_path(data, t.boxes)
        b = tf.reshape(tf.cast(boxes, tf.float32), [-1, 2, 2]) * scale + shift
        # A negative scale (flip) swaps min and max.
        b = tf.concat([tf.reduce_min(b, axis=1), tf.reduce_max(b, axis=1)], axis=-1)
        if in_window:
            b = tf.clip_by_value(b, 0.0, 1.0)
        _set(data, t.boxes, tf.cast(b, boxes.dtype))
    if t.keypoints is not None:
        kp = get_path(data, t.keypoints)
        kpf = tf.cast(kp, tf.float32)
        yx = kpf[..., :2] * scale + shift
        vis = kpf[..., 2:]
        if in_window:
            inside = tf.reduce_all((yx >= 0) & (yx < 1), axis=-1, keepdims=True)
            vis = tf.where(inside, vis, tf.zeros_like(vis))
        _set(data, t.keypoints, tf.cast(tf.concat([yx, vis], axis=-1), kp.dtype))


def _crop(data: Example, t: Targets, maps: list[tf.Tensor], checks: list,
          top: tf.Tensor, left: tf.Tensor, h, w) -> None:
    """Crops every map to the window and moves boxes/keypoints into it."""
    full = tf.cast(tf.shape(maps[0])[:2], tf.float32)
    with tf.control_dependencies(checks):
        for k, m in zip(t.keys, maps):
            crop = tf.slice(m, tf.stack([top, left, 0]), tf.stack([h, w, -1]))
            data[k] = tf.ensure_shape(crop, (h if isinstance(h, int) else None,
                                             w if isinstance(w, int) else None,
                                             m.shape[-1]))
    size = tf.cast(tf.stack([h, w]), tf.float32)
    offset = tf.cast(tf.stack([top, left]), tf.float32)
    _affine_coords(data, t, full / size, -offset / size, in_window=True)


def _fits(m: tf.Tensor, h: int, w: int, op: str) -> list:
    """Fails with the op's name when the crop is larger than the map (TF's own
    message reads like a corrupt record)."""
    return [tf.debugging.assert_greater_equal(
        tf.shape(m)[:2], tf.constant([h, w]),
        message=f"{op}({h}, {w}): the crop is larger than the image; resize the image "
                "first (e.g. resize or resize_small before the crop), pad it (pad_to) "
                "or crop less")]


def resize_map(m: tf.Tensor, size, method: str, antialias: bool, label: bool) -> tf.Tensor:
    if label:  # class ids must not be blended into other ids
        method, antialias = "nearest", False
    out = tf.image.resize(m, size, method=method, antialias=antialias)
    return out if out.dtype == m.dtype else cast_back(out, m.dtype)


def _resize_unless_there(m: tf.Tensor, size: tuple[int, int], method: str,
                         antialias: bool, label: bool) -> tf.Tensor:
    # JPEGs often come at the target size already: skip the float round trip.
    if m.shape[:2].is_fully_defined():
        if tuple(m.shape[:2]) == size:
            return m
        return resize_map(m, size, method, antialias, label)
    return tf.cond(tf.reduce_all(tf.shape(m)[:2] == size),
                   lambda: tf.ensure_shape(m, (*size, None)),
                   lambda: resize_map(m, size, method, antialias, label))


def random_crop(ctx: PPContext, size, keys: Keys = None, *, key: str | None = None,
                label_keys: Keys = ("segmentation",), boxes: str | None = None,
                keypoints: str | None = None) -> Op:
    """A random `size` window, the same for every key (one draw)."""
    h, w = hw(size)
    t = targets(keys, key, label_keys, boxes, keypoints)

    def op(data: Example) -> Example:
        maps, checks = label_maps(data, t, "random_crop")
        shape = tf.shape(maps[0])
        u = tf.random.stateless_uniform([2], seed=take_seed(data))
        room = tf.stack([shape[0] - h, shape[1] - w]) + 1
        top_left = tf.minimum(tf.cast(u * tf.cast(room, tf.float32), tf.int32), room - 1)
        _crop(data, t, maps, checks + _fits(maps[0], h, w, "random_crop"),
              top_left[0], top_left[1], h, w)
        return data
    return op


def central_crop(ctx: PPContext, size, keys: Keys = None, *, key: str | None = None,
                 label_keys: Keys = ("segmentation",), boxes: str | None = None,
                 keypoints: str | None = None) -> Op:
    h, w = hw(size)
    t = targets(keys, key, label_keys, boxes, keypoints)

    def op(data: Example) -> Example:
        maps, checks = label_maps(data, t, "central_crop")
        shape = tf.shape(maps[0])
        _crop(data, t, maps, checks + _fits(maps[0], h, w, "central_crop"),
              (shape[0] - h) // 2, (shape[1] - w) // 2, h, w)
        return data
    return op


def inception_crop(ctx: PPContext, size, area_min: float = 5, area_max: float = 100,
                   method: str = "bilinear", antialias: bool = False, keys: Keys = None,
                   *, key: str | None = None, label_keys: Keys = ("segmentation",),
                   boxes: str | None = None, keypoints: str | None = None) -> Op:
    """Random area/aspect crop (Inception-style) of every key, resized to `size`."""
    h, w = hw(size)
    t = targets(keys, key, label_keys, boxes, keypoints)

    def op(data: Example) -> Example:
        maps, checks = label_maps(data, t, "inception_crop")
        begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
            tf.shape(maps[0]), tf.zeros([0, 0, 4], tf.float32), seed=take_seed(data),
            area_range=(area_min / 100, area_max / 100),
            min_object_covered=0, use_image_if_no_bounding_boxes=True)
        _crop(data, t, maps, checks, begin[0], begin[1], crop_size[0], crop_size[1])
        for k in t.keys:
            data[k] = tf.ensure_shape(
                resize_map(data[k], (h, w), method, antialias, t.is_label(k, data[k])),
                (h, w, data[k].shape[-1]))
        return data
    return op


def flip_lr(ctx: PPContext, keys: Keys = None, *, key: str | None = None,
            keypoint_pairs: Sequence[Sequence[int]] = (), boxes: str | None = None,
            keypoints: str | None = None, label_keys: Keys = ("segmentation",)) -> Op:
    """Flips every key left-right with probability 1/2 (one draw for all).

    `label_keys` is accepted so all joint ops take the same arguments; a flip
    treats label maps as it treats images.
    """
    t = targets(keys, key, label_keys, boxes, keypoints)
    swap = _pair_permutation(keypoint_pairs)

    def op(data: Example) -> Example:
        maps, checks = label_maps(data, t, "flip_lr")
        flip = tf.random.stateless_uniform([], seed=take_seed(data)) < 0.5
        with tf.control_dependencies(checks):
            for k, m in zip(t.keys, maps):
                data[k] = tf.cond(flip, lambda m=m: tf.reverse(m, axis=[1]),
                                  lambda m=m: tf.identity(m))
        before = {p: get_path(data, p) for p in (t.boxes, t.keypoints) if p is not None}
        _affine_coords(data, t, tf.constant([1.0, -1.0]), tf.constant([0.0, 1.0]),
                       in_window=False)
        if t.keypoints is not None and swap is not None:
            kp = get_path(data, t.keypoints)
            with tf.control_dependencies([tf.debugging.assert_greater(
                    tf.shape(kp)[1], int(swap.max()),
                    message=f"flip_lr: keypoint_pairs name keypoint id {swap.max()}, "
                            "but the keypoints have fewer per object")]):
                _set(data, t.keypoints, tf.gather(kp, swap, axis=1))
        for path, old in before.items():
            _set(data, path, tf.where(flip, get_path(data, path), old))
        return data
    return op


def _pair_permutation(pairs: Sequence[Sequence[int]]) -> np.ndarray | None:
    """Keypoint ids after a flip: each pair (l, r) swapped, the rest in place."""
    flat = [i for p in pairs for i in (p if isinstance(p, (tuple, list)) else [p])]
    if (not all(isinstance(p, (tuple, list)) and len(p) == 2 for p in pairs)
            or not all(isinstance(i, int) and i >= 0 for i in flat)
            or len(set(flat)) != len(flat)):
        raise ValueError(f"keypoint_pairs={pairs!r}: give pairs of distinct "
                         "keypoint ids, e.g. keypoint_pairs=((1, 2), (3, 4)).")
    if not flat:
        return None
    perm = np.arange(max(flat) + 1)
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return perm


def resize(ctx: PPContext, size, method: str = "bilinear", antialias: bool = False,
           keys: Keys = None, *, key: str | None = None,
           label_keys: Keys = ("segmentation",)) -> Op:
    """Resizes every key to `size`; label maps nearest-neighbour."""
    h, w = hw(size)
    t = targets(keys, key, label_keys, None, None)

    def op(data: Example) -> Example:
        maps, checks = label_maps(data, t, "resize")
        with tf.control_dependencies(checks):
            for k, m in zip(t.keys, maps):
                data[k] = _resize_unless_there(m, (h, w), method, antialias,
                                               t.is_label(k, m))
        return data
    return op


def resize_small(ctx: PPContext, smaller_size: int, method: str = "bilinear",
                 antialias: bool = False, keys: Keys = None, *, key: str | None = None,
                 label_keys: Keys = ("segmentation",)) -> Op:
    """Resizes so the shorter side is `smaller_size`, keeping the aspect ratio."""
    t = targets(keys, key, label_keys, None, None)

    def op(data: Example) -> Example:
        maps, checks = label_maps(data, t, "resize_small")
        shape = tf.cast(tf.shape(maps[0])[:2], tf.float32)
        new = tf.cast(tf.round(shape * (smaller_size / tf.reduce_min(shape))), tf.int32)
        with tf.control_dependencies(checks):
            for k, m in zip(t.keys, maps):
                data[k] = resize_map(m, new, method, antialias, t.is_label(k, m))
        return data
    return op


def pad_to(ctx: PPContext, size, keys: Keys = None, fill: float = 0,
           label_fill: int = IGNORE_LABEL, *, key: str | None = None,
           label_keys: Keys = ("segmentation",), boxes: str | None = None,
           keypoints: str | None = None) -> Op:
    """Pads bottom and right up to at least `size` (larger maps stay as they are)."""
    h, w = hw(size)
    t = targets(keys, key, label_keys, boxes, keypoints)

    def op(data: Example) -> Example:
        maps, checks = label_maps(data, t, "pad_to")
        old = tf.shape(maps[0])[:2]
        new = tf.maximum(old, [h, w])
        with tf.control_dependencies(checks):
            for k, m in zip(t.keys, maps):
                value = label_fill if t.is_label(k, m) else fill
                data[k] = tf.pad(m, [[0, new[0] - old[0]], [0, new[1] - old[1]], [0, 0]],
                                 constant_values=tf.cast(value, m.dtype))
        _affine_coords(data, t, tf.cast(old, tf.float32) / tf.cast(new, tf.float32),
                       tf.zeros([2]), in_window=False)
        return data
    return op


JOINT_OPS = (resize, resize_small, random_crop, central_crop, flip_lr, inception_crop,
             pad_to)
