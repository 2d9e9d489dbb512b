"""The paper's preprocessing recipes as strings, for configs.

Plain strings and no imports: a config that uses them can be read (by
`config_flags`, a notebook, a test) without TensorFlow installed or loaded.
`input_pipeline.pp.builder` turns the strings into tf.data functions.
"""

from __future__ import annotations


def paper_train(crop: int = 299, resize: int = 340, fused_decode: bool = False) -> str:
    """The paper's training recipe: resize 340x340, random 299 crop, flip, [-1, 1].

    fused_decode: decode JPEGs at reduced DCT scale where the source is at least
    twice the `resize` target (pp.decode.decode_jpeg_and_resize); close to, not
    bit-equal to, the full decode.
    """
    head = (f"decode_jpeg_and_resize({resize})" if fused_decode
            else f"decode|resize({resize})")
    return f"{head}|random_crop({crop})|flip_lr|value_range(-1, 1)"


def paper_eval(crop: int = 299, resize: int = 340) -> str:
    """Evaluation: the same resize (so objects keep their scale), a central crop."""
    return f"decode|resize({resize})|central_crop({crop})|value_range(-1, 1)"


def inception_train(crop: int = 224, fused_decode: bool = False) -> str:
    """Inception crop (5-100% of the area, aspect 3/4-4/3), flip, [-1, 1].

    fused_decode: decode only the crop window of a JPEG
    (pp.decode.decode_jpeg_and_inception_crop); the same pixels, less work.
    """
    head = (f"decode_jpeg_and_inception_crop({crop})" if fused_decode
            else f"decode|inception_crop({crop})")
    return f"{head}|flip_lr|value_range(-1, 1)"
