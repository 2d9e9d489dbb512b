"""Human pose (G-RMI, Papandreou et al. 2017) as a task of the one training loop.

Training batches hold one person crop per example: `image` [B, H, W, 3] and
`keypoints` [B, K, 3] (y, x normalised to the crop, visibility), made by the
`pose_crop_train` pp op. Targets (disks of radius R around each labelled
keypoint, offsets to it) are built on the device inside the loss:

    loss = heatmap_weight * L_heatmap + offset_weight * L_offset

(G-RMI: 4 and 1), see `pose_decode.loss_terms`.

Evaluation batches hold every person of an image (`pose_crop_eval`): `image`
[B, M, H, W, 3], `pose_windows` [B, M, 4] (the crops in image pixels). The
`predict` function decodes keypoints (`pose.decoder`: 'hough', G-RMI's offset
voting, or 'argmax', the best heatmap pixel plus its offset), maps them back to
image pixels and scores each instance by its mean keypoint score; the
`keypoint_ap` evaluator applies OKS-NMS and COCO's keypoint AP.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from big_vision_like import models
from big_vision_like.config import schema
from big_vision_like.tasks import pose_decode
from big_vision_like.tasks.base import Batch, Outputs, PredictFn, Task, TaskContext
from input_pipeline.keys import MASK_KEY

_DEFAULTS = schema.TASK_SECTIONS["pose"]


class PoseTask(Task):
    batch_keys = ("image", "keypoints")

    def __init__(self, model: nn.Module, radius: float,
                 heatmap_weight: float = _DEFAULTS["heatmap_weight"],
                 offset_weight: float = _DEFAULTS["offset_weight"],
                 huber_delta: float = _DEFAULTS["huber_delta"], load: Any = None,
                 decoder: str = _DEFAULTS["decoder"]):
        if radius <= 0:
            raise ValueError(f"pose.radius={radius}: give the disk radius in pixels of the "
                             "input crop (G-RMI: 32 at 353x257).")
        self.model, self.radius, self.load = model, float(radius), load
        self.heatmap_weight, self.offset_weight = heatmap_weight, offset_weight
        self.huber_delta = huber_delta
        if decoder not in pose_decode.DECODERS:
            raise ValueError(f"pose.decoder={decoder!r}: use one of "
                             f"{sorted(pose_decode.DECODERS)}.")
        self.decode = pose_decode.DECODERS[decoder]

    @classmethod
    def from_config(cls, config: Any, ctx: TaskContext) -> PoseTask:
        pose = schema.task_section("pose", config.get("pose"))
        if pose["num_keypoints"] is None or pose["radius"] is None:
            raise ValueError("task 'pose' needs config.pose.num_keypoints and "
                             "config.pose.radius (see configs/transfer/pose_coco_resnet101.py).")
        cfg = dict(config.model)
        cfg.setdefault("name", "pose_resnet")
        model, entry = models.build(cfg, ctx.models, num_keypoints=pose["num_keypoints"],
                                    frozen=config.frozen or None)
        return cls(model, pose["radius"], pose["heatmap_weight"], pose["offset_weight"],
                   pose["huber_delta"], entry.load, pose["decoder"])

    def model_inputs(self, batch: Batch, train: bool) -> tuple[tuple, dict]:
        images = batch["image"]
        if images.ndim == 5:  # evaluation: every person crop of every image
            images = images.reshape(-1, *images.shape[2:])
        return (images,), {"train": train}

    def outputs(self, raw: Any) -> Outputs:
        pred, named = raw
        return {**pred, "pre_logits": named["pre_logits"]}

    def loss(self, outputs: Outputs, batch: Batch) -> tuple[jax.Array, dict[str, jax.Array]]:
        heat, off = pose_decode.loss_terms(
            outputs["heatmaps"], outputs["offsets"], batch["keypoints"].astype(jnp.float32),
            tuple(batch["image"].shape[-3:-1]), self.radius, self.huber_delta)
        mask = batch.get(MASK_KEY)
        w = jnp.ones_like(heat) if mask is None else mask.reshape(-1).astype(jnp.float32)
        n = jnp.maximum(w.sum(), 1.0)
        heat, off = (heat * w).sum() / n, (off * w).sum() / n
        total = self.heatmap_weight * heat + self.offset_weight * off
        return total, {"heatmap_loss": heat, "offset_loss": off}

    def predict_fns(self) -> dict[str, PredictFn]:
        def predict(out: Outputs, batch: Batch) -> dict[str, jax.Array]:
            images = batch["image"]
            kp = self.decode(out["heatmaps"], out["offsets"], tuple(images.shape[-3:-1]),
                             self.radius)
            if images.ndim == 5:
                kp = kp.reshape(*images.shape[:2], *kp.shape[1:])
            if "pose_windows" in batch:  # crop -> image pixels
                win = batch["pose_windows"].astype(jnp.float32)[..., None, :]
                size = win[..., 2:] - win[..., :2]
                kp = jnp.concatenate([win[..., :2] + kp[..., :2] * size, kp[..., 2:]], -1)
            return {"keypoints": kp, "instance_scores": kp[..., 2].mean(-1)}
        return {"predict": predict}
