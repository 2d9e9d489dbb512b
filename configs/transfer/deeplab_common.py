"""What the semantic segmentation configs share (paper Sec. 5.3): DeepLab-ASPP-L on
the pre-trained ResNet body, per-pixel softmax, SGD with momentum, 'poly' decay.

Examples carry `image` and a label map `segmentation` ([H, W, 1] class ids,
255 = ignore). `input.label_pp` is the seam where a dataset's label map
becomes class ids: ops run right after the image is decoded, and both the
training and the evaluation pp strings follow it (set it from the shell,
`--config.input.label_pp=...`). `input.fit_pp` then brings image and label
map together to the input size: resized (label maps by nearest neighbour, so
ids stay ids) or, for VOC as DeepLab does, padded (label maps with 255).

The body's variables have the classification ResNet's paths, so
`init_from.checkpoint` loads a pre-training checkpoint; the classification
head and the fresh ASPP branches are skipped ('^(head|aspp)/').
"""

from __future__ import annotations

import dataclasses

import ml_collections
from ml_collections.config_dict import placeholder

from big_vision_like.config import schema

DECODE_LABEL_MAP = "decode(channels=1, key='segmentation')"


@dataclasses.dataclass(frozen=True)
class SegTarget:
    """One segmentation target: its data, classes and schedule."""

    data: str  # TFDS name
    train_split: str
    test_split: str
    image_size: int
    num_classes: int  # background included
    label_pp: str  # ops that leave class ids in 'segmentation' (decoding it first)
    model: dict  # the body: name='deeplab' fields other than num_classes
    total_steps: int
    batch_size: int
    base_lr: float = 1e-3
    weight_decay: float = 5e-4
    class_names: tuple[str, ...] | None = None  # None: the dataset's metadata, else ids
    eval_every_steps: int = 10 ** 9  # evaluators also run once at the end
    eval_batch_size: int = 8
    fit_pp: str | None = None  # None: resize image and label map to image_size
    hierarchy: str = "none"  # 'dataset' where label_pp needs the class names


def deeplab_config(t: SegTarget) -> ml_collections.ConfigDict:
    c = schema.base()
    c.update(batch_size=t.batch_size, total_steps=t.total_steps, log_steps=50,
                   log_every_seconds=30.0, ckpt_steps=2000, keep_ckpts=2)

    s = t.image_size
    c.input.data.update(name=t.data, split=t.train_split)
    c.input.image_shape = (s, s, 3)
    c.input.label_pp = t.label_pp
    c.input.fit_pp = t.fit_pp or f"resize({s}, keys=('image', 'segmentation'))"
    # References, not copies: a new label_pp or fit_pp from the shell reaches both.
    pp = ("decode|" + c.input.get_ref("label_pp") + "|" + c.input.get_ref("fit_pp")
          + "|value_range(-1, 1)|keep('image', 'segmentation')")
    c.input.pp = pp  # no augmentation, as the paper
    c.input.hierarchy = t.hierarchy
    c.input.shuffle_buffer = 2_000
    c.input.skip_corrupt = True
    c.input.prefetch = 2

    c.task = "segmentation"
    c.model = dict(name="deeplab", num_classes=t.num_classes, **t.model)
    c.optimizer = schema.optimizer_section("momentum", momentum=0.9,
                                           weight_decay=t.weight_decay)
    c.schedule = schema.schedule_section("poly", base_lr=t.base_lr, power=0.9, end_lr=0.0)
    c.task = "segmentation"
    c.init_from.skip = "^(head|aspp)/"

    c.evals.test = dict(type="miou", data=dict(split=t.test_split), pp=pp,
                        every_steps=t.eval_every_steps,
                        class_names=t.class_names or placeholder(tuple))
    c.eval_batch_size = t.eval_batch_size
    return c
