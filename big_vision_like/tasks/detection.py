"""Object detection (paper Sec. 5.2): Faster R-CNN on the pre-trained ResNet.

Batches (made by the `detection_pack` pp op) carry `image` [B, H, W, 3] padded
to a fixed size, `image_hw` [B, 2] the valid part in pixels, and padded
ground truth `boxes` [B, G, 4] (normalised to the padded input), `classes`
[B, G] (0-based), `box_valid` [B, G]; `is_crowd` and `difficult` where the
data has them. Crowd and difficult boxes are not training targets: they are
left out of the matching, so an anchor or proposal over one alone counts as
background (Detectron instead ignores candidates inside crowd regions).

The loss is the TF Object Detection API's (which the paper's detector used):

    L = L_rpn_objectness + 2 L_rpn_box + L_box_classes + 2 L_box_refinement

objectness as sigmoid cross-entropy, classes as softmax cross-entropy over
C+1, boxes as smooth-L1 (Huber, delta 1) of the encoded deltas on positives
only; each term is normalised by the image's number of sampled candidates and
averaged over the batch's real images (`_mask`).

The model assigns targets itself (see `models/faster_rcnn.py`); the task only
weighs them. `predict` gives the detections the `coco_ap` and `voc_ap`
evaluators read: `detection_boxes` [B, D, 4] normalised to the original
image, `detection_scores`, `detection_classes` (0-based), `detection_valid`.
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
from big_vision_like.config import schema
from big_vision_like.mesh import DATA
from big_vision_like.tasks.base import Batch, Outputs, PredictFn, Task, TaskContext
from input_pipeline.keys import MASK_KEY

DETECTION_OUTPUTS = ("detection_boxes", "detection_scores", "detection_classes",
                     "detection_valid")


def _per_image_mean(values: jax.Array, weights: jax.Array) -> jax.Array:
    """[B] sum(values * weights) / max(sum(weights), 1) over the last axis."""
    return (values * weights).sum(-1) / jnp.maximum(weights.sum(-1), 1.0)


def training_boxes(batch: Batch) -> jax.Array:
    """[B, G] the ground truth that are training targets: not crowd, not difficult."""
    valid = batch["box_valid"].astype(bool)
    for key in ("is_crowd", "difficult"):
        if key in batch:
            valid &= ~batch[key].astype(bool)
    return valid


class DetectionTask(Task):
    batch_keys = ("image", "image_hw", "boxes", "classes", "box_valid")

    def __init__(self, model: nn.Module, load: Any = None,
                 loss_weights: dict[str, float] | None = None):
        self.model, self.load = model, load
        self.loss_weights = dict(schema.TASK_SECTIONS["detection"]["loss_weights"])
        unknown = sorted(set(loss_weights or {}) - set(self.loss_weights))
        if unknown:
            raise ValueError(f"detection.loss_weights: unknown terms {unknown}; the terms "
                             f"are {sorted(self.loss_weights)}.")
        self.loss_weights.update(loss_weights or {})

    @classmethod
    def from_config(cls, config: Any, ctx: TaskContext) -> DetectionTask:
        if not config.model.get("num_classes"):
            raise ValueError("detection: set model.num_classes to the number of object "
                             "classes, background not counted (80 for COCO, 20 for VOC).")
        cfg = dict(config.model)
        cfg.setdefault("name", "faster_rcnn")
        model, entry = models.build(cfg, ctx.models, frozen=config.frozen or None)
        section = schema.task_section("detection", config.get("detection"))
        return cls(model, entry.load, dict(section["loss_weights"]))

    def example_batch(self, image_shape: tuple[int, ...]) -> dict[str, jax.Array]:
        return {"image": jnp.zeros((1, *image_shape), jnp.float32),
                "image_hw": jnp.array([image_shape[:2]], jnp.int32)}

    def model_inputs(self, batch: Batch, train: bool) -> tuple[tuple, dict]:
        args = (batch["image"], batch["image_hw"])
        if not train:
            return args, {"train": False}
        return args, {"gt_boxes": batch["boxes"], "gt_classes": batch["classes"],
                      "gt_valid": training_boxes(batch), "train": True}

    def loss(self, outputs: Outputs, batch: Batch) -> tuple[jax.Array, dict[str, jax.Array]]:
        if "rpn_targets" not in outputs:
            raise ValueError("detection: the loss needs the training forward pass (its "
                             "targets are sampled there); evaluate with coco_ap or voc_ap.")
        at, rt = outputs["rpn_targets"], outputs["roi_targets"]
        rpn_obj = optax.sigmoid_binary_cross_entropy(outputs["rpn_objectness"],
                                                     at["objectness"])
        rpn_box = optax.huber_loss(outputs["rpn_deltas"], at["box_targets"], delta=1.0).sum(-1)
        box_cls = optax.softmax_cross_entropy_with_integer_labels(outputs["class_logits"],
                                                                  rt["classes"])
        # The deltas of each roi's own class (any class for background: weight 0).
        positive = (rt["classes"] > 0).astype(jnp.float32) * rt["weights"]
        own = jnp.take_along_axis(
            outputs["box_deltas"], jnp.maximum(rt["classes"] - 1, 0)[..., None, None],
            axis=2)[:, :, 0]
        box_ref = optax.huber_loss(own, rt["box_targets"], delta=1.0).sum(-1)
        terms = {
            "rpn_objectness": _per_image_mean(rpn_obj, at["weights"]),
            # Normalised by all sampled candidates, not positives, as that implementation.
            "rpn_box": (rpn_box * at["box_weights"]).sum(-1)
            / jnp.maximum(at["weights"].sum(-1), 1.0),
            "box_classes": _per_image_mean(box_cls, rt["weights"]),
            "box_refinement": (box_ref * positive).sum(-1)
            / jnp.maximum(rt["weights"].sum(-1), 1.0),
        }
        mask = batch.get(MASK_KEY)
        w = (jnp.ones(batch["image"].shape[:1], jnp.float32) if mask is None
             else mask.astype(jnp.float32))
        n = jnp.maximum(w.sum(), 1.0)
        aux = {f"{k}_loss": (v * w).sum() / n for k, v in terms.items()}
        total = sum(self.loss_weights[k] * aux[f"{k}_loss"] for k in terms)
        aux["rpn_positives"] = (at["box_weights"].sum(-1) * w).sum() / n
        aux["roi_positives"] = (positive.sum(-1) * w).sum() / n
        return total, aux

    def output_specs(self, mesh: Mesh) -> dict[str, P]:
        return {"rpn_objectness": P(DATA, None), "rpn_deltas": P(DATA, None, None),
                "class_logits": P(DATA, None, None), "box_deltas": P(DATA, None, None, None)}

    def predict_fns(self) -> dict[str, PredictFn]:
        def predict(out: Outputs, batch: Batch) -> dict[str, jax.Array]:
            return {k: out[k] for k in DETECTION_OUTPUTS}

        def proposals(out: Outputs, batch: Batch) -> dict[str, jax.Array]:
            hw = batch["image_hw"].astype(jnp.float32)
            scale = jnp.concatenate([hw, hw], -1)[:, None]
            return {"proposal_boxes": out["proposals"] / scale,
                    "proposal_valid": out["proposal_valid"]}
        return {"predict": predict, "proposals": proposals, "random_boxes": random_boxes}


def random_boxes(out: Outputs, batch: Batch) -> dict[str, jax.Array]:
    """The chance baseline in the `predict` layout: as many boxes as the model's
    detection slots, centres uniform over the image, sides uniform in [0.05, 0.6]
    of it, random classes and scores; seeded by `image_id`, so repeatable."""
    b, d = out["detection_classes"].shape
    num_classes = out["class_logits"].shape[-1] - 1
    ids = batch["image_id"] if "image_id" in batch else jnp.arange(b)

    def one(image_id):
        k1, k2, k3, k4 = jax.random.split(jax.random.fold_in(jax.random.key(0), image_id), 4)
        centre = jax.random.uniform(k1, (d, 2))
        half = jax.random.uniform(k2, (d, 2), minval=0.05, maxval=0.6) / 2
        boxes = jnp.clip(jnp.concatenate([centre - half, centre + half], -1), 0.0, 1.0)
        return (boxes, jax.random.uniform(k3, (d,)),
                jax.random.randint(k4, (d,), 0, num_classes))

    boxes, scores, classes = jax.vmap(one)(ids.astype(jnp.int32))
    return {"detection_boxes": boxes, "detection_scores": scores,
            "detection_classes": classes, "detection_valid": jnp.ones((b, d), bool)}
