"""What every preprocessing op module shares: the op types, the context, the
example's random seed, and the `in_key_out_key` decorator.

Kept apart from the op modules and `pp.registry` so op modules such as
`pp.joint` can use it without importing each other.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf

from input_pipeline.hierarchy import LabelHierarchy
from input_pipeline.keys import SEED_KEY

Example = dict[str, Any]
Op = Callable[[Example], Example]
# What an `in_key_out_key` op is written as: one tensor (and, `with_data`, the
# example) in, the result out.
TensorFn = Callable[..., Any]


@dataclasses.dataclass(frozen=True)
class PPContext:
    """What ops may need beyond their arguments: the dataset's classes.

    classes: the class subset trained on (input.data.classes): multi-hot
    labels keep only these columns, in this order.
    """

    num_classes: int | None = None
    hierarchy: LabelHierarchy | None = None
    classes: tuple[int, ...] | None = None


@dataclasses.dataclass(frozen=True)
class OpFactory:
    build: Callable[..., Op]
    # Decoding ops are where a corrupt record fails; the pipeline can skip
    # and count failures there without hiding errors of later ops.
    decodes: bool = False


def take_seed(data: Example) -> tf.Tensor:
    """A fresh stateless seed for one random op; advances the example's seed.

    An op that transforms several keys takes ONE seed and derives every
    draw from it, so image, label map, boxes and keypoints see the same crop.
    """
    seeds = tf.random.experimental.stateless_split(data[SEED_KEY], num=2)
    data[SEED_KEY] = seeds[0]
    return seeds[1]


def hw(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int) and not isinstance(size, bool):
        return size, size
    if (isinstance(size, (tuple, list)) and len(size) == 2
            and all(isinstance(x, int) and not isinstance(x, bool) for x in size)):
        return int(size[0]), int(size[1])
    raise ValueError(f"size={size!r}: give pixels, an int or (height, width).")


def cast_back(img: tf.Tensor, dtype: tf.DType) -> tf.Tensor:
    """Resized (float) pixels back to the input's dtype, rounded and clipped."""
    if dtype == tf.uint8:
        return tf.cast(tf.clip_by_value(tf.round(img), 0, 255), tf.uint8)
    if dtype.is_integer:
        return tf.cast(tf.round(img), dtype)
    return tf.cast(img, dtype)


def pad_rows(x: tf.Tensor, n: int) -> tf.Tensor:
    """The first `n` rows of x, zero-padded to exactly `n` (a static first dimension,
    as batching needs for per-object fields)."""
    x = x[:n]
    pad = [[0, n - tf.shape(x)[0]]] + [[0, 0]] * (x.shape.rank - 1)
    return tf.ensure_shape(tf.pad(x, pad), [n, *x.shape[1:]])


def in_key_out_key(indefault: str = "image", outdefault: str | None = None,
                   with_data: bool = False) -> Callable[[Callable[..., Callable]],
                                                        Callable[..., Op]]:
    """Decorator for single-tensor ops, after big_vision's `utils.InKeyOutKey`.

    The decorated factory `make(ctx, *args, **kw)` returns a function of one
    tensor (and of the whole example when `with_data`); the decorator adds
    the arguments `key` (the input key, default `indefault`) and
    `key_result` (where the result goes). Unlike big_vision, whose `key`
    sets both ends, an op with an output of its own (`outdefault`, as
    `onehot`: 'label' -> 'labels') keeps writing there when only `key` is
    given; an in-place op (`outdefault=None`) writes back to `key`.
    """
    def decorator(make: Callable[..., Callable]) -> Callable[..., Op]:
        @functools.wraps(make)
        def factory(ctx: PPContext, *args: Any, key: str | None = None,
                    key_result: str | None = None, **kwargs: Any) -> Op:
            fn = make(ctx, *args, **kwargs)
            src = key or indefault
            dst = key_result or (outdefault or src)

            def op(data: Example) -> Example:
                if src not in data:
                    raise KeyError(f"{make.__name__}: the example has no {src!r} "
                                   f"(it has {sorted(data)}); name the input with "
                                   "key='...'.")
                data[dst] = fn(data[src], data) if with_data else fn(data[src])
                return data
            return op
        return factory
    return decorator
