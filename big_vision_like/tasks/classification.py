"""Image classification: multi-label sigmoid (the paper's JFT head) or softmax.

The head's class dimension is rounded up to a multiple of the mesh's `model`
axis and split over it; padded columns get a logit of -1e9 (zero loss, zero
gradient, never ranked) and are cut from predictions. A sigmoid loss needs
no cross-device softmax; a softmax over the sharded head is reduced across
`model` by XLA.
"""

from __future__ import annotations

import inspect
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from big_vision_like import losses as losses_lib
from big_vision_like import models
from big_vision_like.mesh import DATA, MODEL
from big_vision_like.tasks.base import Batch, Outputs, PredictFn, Task, TaskContext
from input_pipeline.keys import MASK_KEY

# Human-verified absent classes (multi-hot, as `labels`), for `loss_kw.unknown_weight`.
NEGATIVES_KEY = "negative_labels"


def round_up_classes(num_classes: int, mesh: Mesh) -> int:
    """Head width: num_classes rounded up to a multiple of the `model` axis.

    18,291 (JFT) is odd, so no mesh of 2, 4 or 8 model shards divides it.
    """
    m = mesh.shape[MODEL]
    return -(-num_classes // m) * m


def mask_padded_classes(logits: jax.Array, num_classes: int) -> jax.Array:
    if logits.shape[-1] == num_classes:
        return logits
    valid = jnp.arange(logits.shape[-1]) < num_classes
    return jnp.where(valid, logits, jnp.asarray(-1e9, logits.dtype))


class ClassificationTask(Task):
    """Batches carry `image` and `labels` (multi-hot or one-hot, num_classes wide).

    Outputs: `logits` and the model's named outputs (`pre_logits`, `conv1`
    ... `conv5`). Predict functions: `predict` (logits cut to the dataset's
    classes, and pre-logit features) and `features` (pre-logit features
    only; XLA drops the head).
    """

    batch_keys = ("image", "labels")

    def __init__(self, model: nn.Module, num_classes: int, loss: str = "sigmoid_xent",
                 losses: Any = None, load: Any = None, loss_kw: Any = None):
        """loss_kw: keyword arguments of the loss (`config.loss_kw`). With
        `unknown_weight` other than 1, batches also carry `negative_labels`
        (verified negatives) and labels neither positive nor verified
        negative weigh `unknown_weight` (losses.sigmoid_xent)."""
        self.model, self.num_classes, self.load = model, num_classes, load
        self.loss_name = loss
        self.loss_fn = (losses or losses_lib.default_registry()).get(loss)
        self.loss_kw = dict(loss_kw or {})
        accepted = inspect.signature(self.loss_fn).parameters
        unknown = [k for k in self.loss_kw if k not in accepted or k == "negatives"]
        if unknown:
            raise ValueError(f"loss_kw: the loss {loss!r} takes no {unknown}; remove them "
                             "or choose a loss that does (sigmoid_xent: unknown_weight).")
        # Unset: the loss's own default (losses.sigmoid_xent's 1.0: no reweighting).
        default = accepted["unknown_weight"].default if "unknown_weight" in accepted else 1.0
        weight = self.loss_kw.get("unknown_weight", default)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise ValueError(f"loss_kw.unknown_weight={weight!r}: give a number >= 0 "
                             "(1.0: unknown labels weigh as much as verified ones).")
        self.uses_negatives = weight != 1.0
        if self.uses_negatives:
            self.batch_keys = (*type(self).batch_keys, NEGATIVES_KEY)

    @classmethod
    def from_config(cls, config: Any, ctx: TaskContext) -> ClassificationTask:
        num_classes = config.model.get("num_classes") or ctx.num_classes
        if not num_classes:
            raise ValueError("classification: set model.num_classes or use a dataset "
                             "whose metadata gives the number of classes.")
        model, entry = models.build(
            config.model, ctx.models, num_classes=round_up_classes(num_classes, ctx.mesh),
            frozen=config.frozen or None)
        return cls(model, num_classes, config.loss, ctx.losses, entry.load, config.loss_kw)

    def outputs(self, raw: Any) -> Outputs:
        logits, named = raw
        return {"logits": mask_padded_classes(logits, self.num_classes), **named}

    def loss(self, outputs: Outputs, batch: Batch) -> tuple[jax.Array, dict[str, jax.Array]]:
        logits, labels = outputs["logits"], batch["labels"]

        def to_head_width(x):
            if logits.shape[-1] <= x.shape[-1]:
                return x
            return jnp.pad(x, ((0, 0), (0, logits.shape[-1] - x.shape[-1])))
        kw = dict(self.loss_kw)
        if self.uses_negatives:
            if NEGATIVES_KEY not in batch:
                raise ValueError(
                    f"loss_kw.unknown_weight={kw['unknown_weight']} needs {NEGATIVES_KEY!r} "
                    f"in every batch the loss sees (it has {sorted(batch)}); add "
                    f"\"multi_hot(key='{NEGATIVES_KEY}', fill_ancestors=False)\" and keep it "
                    "in the pp string.")
            kw["negatives"] = to_head_width(batch[NEGATIVES_KEY])
        return self.loss_fn(logits, to_head_width(labels), batch.get(MASK_KEY), **kw), {}

    def output_specs(self, mesh: Mesh) -> dict[str, P]:
        # Each device keeps its (examples, classes) block of the logits: the
        # loss of a class-sharded head never gathers all classes.
        return {"logits": P(DATA, MODEL)}

    def predict_fns(self) -> dict[str, PredictFn]:
        n = self.num_classes
        return {
            "predict": lambda out, batch: {"logits": out["logits"][:, :n],
                                           "pre_logits": out["pre_logits"]},
            "features": lambda out, batch: {"pre_logits": out["pre_logits"]},
            # An earlier stage's output, pooled, in place of the last one's: what a
            # probe reads to ask whether the last stage is too specialised.
            **{f"features_conv{i}": _pooled(f"conv{i}") for i in (2, 3, 4)},
        }


def _pooled(stage: str) -> PredictFn:
    return lambda out, batch: {"pre_logits": out[stage].mean(axis=(1, 2)).astype(jnp.float32)}
