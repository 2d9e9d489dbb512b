"""Fused decode ops: the decode shortcuts of the field, where they keep the recipe.

Decoding a camera-sized JPEG is most of a training pipeline's host time. Two
shortcuts skip work whose result the recipe throws away:

  decode_jpeg_and_inception_crop(size)  decodes only the crop window
      (`tf.image.decode_and_crop_jpeg`, after big_vision's op of the same name)
      and resizes it. It draws the window exactly as `decode|inception_crop(size)`
      does from the same example seed, and the pixels are identical: libjpeg
      decodes the window's MCU rows and columns and crops them, it does not
      approximate.
  decode_jpeg_and_resize(size)  decodes at 1/2, 1/4 or 1/8 scale in the DCT
      domain (libjpeg's `scale_denom`, `tf.image.decode_jpeg(ratio=r)`) when
      the target is at least r times smaller than the source in both sides, then
      resizes to `size`. The scaled IDCT is an area-like average, so the result
      is close to, not equal to, `decode|resize(size)` (tests bound the
      difference; it is smaller than the aliasing of the plain bilinear resize
      it replaces). `dct_scaling=False` is the plain `decode|resize(size)`.

Both fall back to full decoding for non-JPEG bytes (PNG, GIF, BMP), so a mixed
collection still reads; both are decoding ops, so a corrupt record is skipped
and counted like one failing `decode`.
"""

from __future__ import annotations

import tensorflow as tf

from input_pipeline.pp.base import Op, PPContext, cast_back, hw, take_seed

# libjpeg's DCT scaling offers 1/1, 1/2, 1/4 and 1/8.
DCT_RATIOS = (1, 2, 4, 8)


def _resize(img: tf.Tensor, size: tuple[int, int], method: str,
            antialias: bool) -> tf.Tensor:
    # As pp.joint's image resize: float resize, rounded back to the input dtype.
    out = tf.image.resize(img, size, method=method, antialias=antialias)
    return cast_back(out, img.dtype)


def _check_key(data: dict, key: str, op: str) -> tf.Tensor:
    if key not in data:
        raise KeyError(f"{op}: the example has no {key!r} (it has {sorted(data)}); "
                       "name the encoded image with key='...'.")
    return data[key]


def dct_ratio(source_hw: tf.Tensor, target: tuple[int, int]) -> tf.Tensor:
    """The largest r in DCT_RATIOS with source // r >= target in both sides (an
    int32 index into DCT_RATIOS): never decode below the target size."""
    fits = [tf.reduce_all(source_hw // r >= tf.constant(target)) for r in DCT_RATIOS]
    return tf.reduce_sum(tf.cast(tf.stack(fits[1:]), tf.int32))


def decode_jpeg_and_resize(ctx: PPContext, size, method: str = "bilinear",
                           antialias: bool = False, dct_scaling: bool = True,
                           key: str = "image") -> Op:
    """decode|resize(size), decoding JPEGs at reduced DCT scale where the target
    is at least 2x smaller than the source."""
    h, w = hw(size)

    def op(data: dict) -> dict:
        raw = _check_key(data, key, "decode_jpeg_and_resize")

        def jpeg() -> tf.Tensor:
            index = dct_ratio(tf.image.extract_jpeg_shape(raw)[:2], (h, w))
            branches = [lambda r=r: tf.image.decode_jpeg(raw, channels=3, ratio=r)
                        for r in DCT_RATIOS]
            return tf.switch_case(index, branches)

        def full() -> tf.Tensor:
            return tf.io.decode_image(raw, channels=3, expand_animations=False)

        img = tf.cond(tf.io.is_jpeg(raw), jpeg, full) if dct_scaling else full()
        img = tf.ensure_shape(img, (None, None, 3))
        # A source already at the target size keeps its pixels, as resize does.
        data[key] = tf.cond(tf.reduce_all(tf.shape(img)[:2] == (h, w)),
                            lambda: tf.ensure_shape(img, (h, w, 3)),
                            lambda: _resize(img, (h, w), method, antialias))
        return data
    return op


def decode_jpeg_and_inception_crop(ctx: PPContext, size, area_min: float = 5,
                                   area_max: float = 100, method: str = "bilinear",
                                   antialias: bool = False, key: str = "image") -> Op:
    """decode|inception_crop(size), decoding only the crop window of a JPEG.

    The same seed gives the same window as `inception_crop` (one draw of the
    example's seed, the same sampler), so the two strings are interchangeable.
    """
    h, w = hw(size)
    if not 0 < area_min <= area_max <= 100:
        raise ValueError(f"area_min={area_min}, area_max={area_max}: give percentages "
                         "with 0 < area_min <= area_max <= 100.")

    def window(shape: tf.Tensor, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
            shape, tf.zeros([0, 0, 4], tf.float32), seed=seed,
            area_range=(area_min / 100, area_max / 100),
            min_object_covered=0, use_image_if_no_bounding_boxes=True)
        return begin, crop_size

    def op(data: dict) -> dict:
        raw = _check_key(data, key, "decode_jpeg_and_inception_crop")
        seed = take_seed(data)

        def jpeg() -> tf.Tensor:
            begin, crop = window(tf.image.extract_jpeg_shape(raw), seed)
            return tf.image.decode_and_crop_jpeg(
                raw, tf.stack([begin[0], begin[1], crop[0], crop[1]]), channels=3)

        def full() -> tf.Tensor:
            img = tf.io.decode_image(raw, channels=3, expand_animations=False)
            begin, crop = window(tf.shape(img), seed)
            return tf.slice(img, begin, crop)

        crop = tf.ensure_shape(tf.cond(tf.io.is_jpeg(raw), jpeg, full), (None, None, 3))
        data[key] = tf.ensure_shape(_resize(crop, (h, w), method, antialias), (h, w, 3))
        return data
    return op


DECODE_OPS = (decode_jpeg_and_resize, decode_jpeg_and_inception_crop)
