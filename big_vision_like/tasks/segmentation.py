"""Semantic segmentation (paper Sec. 5.3): DeepLab-ASPP-L on the pre-trained body.

Batches carry `image` and `segmentation` ([B, H, W, 1] integer class ids,
IGNORE_LABEL = 255 for pixels without a label: VOC's object borders). The
loss is the per-pixel softmax cross-entropy at the input resolution,
averaged over the labelled pixels of the batch's real examples (`_mask`).

The class dimension is small (21 for VOC), so the ASPP branches are
replicated; logits are split over `data` by example, like the batch, and
each device's share of the per-pixel loss stays on it until the final sum.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from big_vision_like import models
from big_vision_like.mesh import DATA
from big_vision_like.tasks.base import Batch, Outputs, PredictFn, Task, TaskContext
from input_pipeline.keys import IGNORE_LABEL, MASK_KEY

LABEL_KEY = "segmentation"


def labelled_pixels(labels: jax.Array, mask: jax.Array | None) -> jax.Array:
    """[B, H, W] bool: pixels with a class (not IGNORE_LABEL) of real examples."""
    valid = labels != IGNORE_LABEL
    if mask is not None:
        valid &= mask.astype(bool)[:, None, None]
    return valid


def pixel_xent(logits: jax.Array, labels: jax.Array, mask: jax.Array | None = None
               ) -> tuple[jax.Array, jax.Array]:
    """(mean softmax cross-entropy over labelled pixels, their count).

    logits [B, H, W, C]; labels [B, H, W] or [B, H, W, 1] ints; mask [B] or None.
    """
    if labels.ndim == logits.ndim:
        labels = labels[..., 0]
    labels = labels.astype(jnp.int32)
    valid = labelled_pixels(labels, mask)
    per_pixel = optax.softmax_cross_entropy_with_integer_labels(
        logits.astype(jnp.float32), jnp.where(valid, labels, 0))
    count = valid.sum()
    return jnp.where(valid, per_pixel, 0.0).sum() / jnp.maximum(count, 1), count


class SegmentationTask(Task):
    """Outputs: `logits` [B, H, W, C] at the input size, and the model's named outputs.

    Predict functions: `predict` (full-resolution logits, what the `miou`
    evaluator reads) and `class_ids` (their argmax, [B, H, W] int32).
    """

    batch_keys = ("image", LABEL_KEY)

    def __init__(self, model: nn.Module, num_classes: int, load: Any = None):
        self.model, self.num_classes, self.load = model, num_classes, load

    @classmethod
    def from_config(cls, config: Any, ctx: TaskContext) -> SegmentationTask:
        # The dataset's own class count (image-level labels) is not the number of
        # segmentation classes, so the config must give it.
        num_classes = config.model.get("num_classes")
        if not num_classes:
            raise ValueError("segmentation: set model.num_classes to the number of "
                             "segmentation classes, background included (21 for VOC).")
        if config.model.get("name", "resnet") == "resnet":
            raise ValueError("segmentation: model.name='resnet' has no dense head; use "
                             "model.name='deeplab'.")
        model, entry = models.build(config.model, ctx.models,
                                    frozen=config.frozen or None)
        return cls(model, num_classes, entry.load)

    def outputs(self, raw: Any) -> Outputs:
        logits, named = raw
        return {"logits": logits, **named}

    def loss(self, outputs: Outputs, batch: Batch) -> tuple[jax.Array, dict[str, jax.Array]]:
        logits = outputs["logits"]
        labels = batch[LABEL_KEY]
        if labels.shape[1:3] != logits.shape[1:3]:
            raise ValueError(f"segmentation labels are {labels.shape[1:3]} pixels but the "
                             f"logits {logits.shape[1:3]}: resize the label map with the "
                             "image in the pp string (e.g. resize(S, keys=('image', "
                             "'segmentation'))).")
        value, count = pixel_xent(logits, labels, batch.get(MASK_KEY))
        return value, {"labelled_pixels": count.astype(jnp.float32)}

    def output_specs(self, mesh: Mesh) -> dict[str, P]:
        return {"logits": P(DATA, None, None, None)}

    def predict_fns(self) -> dict[str, PredictFn]:
        return {
            "predict": lambda out, batch: {"logits": out["logits"]},
            "class_ids": lambda out, batch: {
                "class_ids": out["logits"].argmax(-1).astype(jnp.int32)},
        }
