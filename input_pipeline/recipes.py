"""The paper's preprocessing recipes as strings, for configs.

Plain strings and no imports: a config that uses them can be read (by
`config_flags`, a notebook, a test) without TensorFlow installed or loaded.
`input_pipeline.preprocess` turns the strings into tf.data functions.
"""

from __future__ import annotations


def paper_train(crop: int = 299, resize: int = 340) -> str:
    """The paper's training recipe: resize 340x340, random 299 crop, flip, [-1, 1]."""
    return f"decode|resize({resize})|random_crop({crop})|flip_lr|value_range(-1, 1)"


def paper_eval(crop: int = 299, resize: int = 340) -> str:
    """Evaluation: the same resize (so objects keep their scale), a central crop."""
    return f"decode|resize({resize})|central_crop({crop})|value_range(-1, 1)"


def inception_train(crop: int = 224) -> str:
    return f"decode|inception_crop({crop})|flip_lr|value_range(-1, 1)"
