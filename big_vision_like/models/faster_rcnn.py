"""Faster R-CNN (Ren et al. 2015) on the ResNet body, split as the TF Object
Detection API splits it for the paper's detector (section 5.2; Huang et al. 2017).

conv1..conv4 (output stride 16) are the shared feature extractor. The region
proposal network (a 3x3 conv, then per anchor an objectness logit and box
deltas) scores a grid of anchors; the best `rpn_pre_nms` decoded boxes go
through NMS at IoU `rpn_nms_iou` and `num_proposals` (300) are kept. Each
proposal's window of the conv4 map is cropped and resized to 14x14
(crop-and-resize, as that implementation's ROI pooling), max-pooled to 7x7,
run through conv5 (stride 1 there) and averaged: the box classifier predicts
C+1 class logits (0 is background) and class-specific box deltas. At test time
boxes are decoded per class, clipped to the image and kept by per-class NMS.

In training the model also assigns the targets (`detection.targets`): RPN
minibatch of `rpn_batch` anchors per image (half positive at most), box
classifier minibatch of `box_batch` proposals (a quarter positive at most),
sampled with the step's 'dropout' rng. Proposals are not differentiated
through (`stop_gradient`), as in that implementation.

Every shape is static: anchors over the padding of an image (centre outside
`image_hw`) are never trained and never proposed; padded ground truth carries
`gt_valid`. Body variables keep the classification ResNet's paths, so
`init_from` loads a pre-trained checkpoint (skip '^(head|rpn|box_classifier)/')
and `frozen='^(conv1|conv[2-4])'` freezes the shared extractor (its batch
norms in inference mode).

Coordinates are (ymin, xmin, ymax, xmax) in input pixels inside the model;
detections come out normalised to the valid (unpadded) image, which is the
original image's normalisation since the resize keeps the aspect ratio.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from big_vision_like.detection import anchors as anchor_lib
from big_vision_like.detection import boxes as box_lib
from big_vision_like.detection import nms as nms_lib
from big_vision_like.detection import roi_align, targets
from big_vision_like.mesh import per_data_shard
from big_vision_like.models.resnet import ResNet

FEATURE_STRIDE = 16  # conv4 of a ResNet
_NEVER = -1e30  # score of anchors that must not become proposals


def _anchor_usable(anchors: jax.Array, image_hw: jax.Array) -> jax.Array:
    centre = (anchors[:, :2] + anchors[:, 2:]) / 2
    return jnp.all(centre < image_hw.astype(jnp.float32), axis=-1)


class FasterRCNN(ResNet):
    """`num_classes` object classes (background not counted)."""

    num_classes: int = 0
    # TF OD API's grid anchors for Faster R-CNN: 256 px base, 4 scales x 3 ratios.
    anchor_base_size: float = 256.0
    anchor_scales: Sequence[float] = (0.25, 0.5, 1.0, 2.0)
    anchor_ratios: Sequence[float] = (0.5, 1.0, 2.0)
    rpn_channels: int = 512
    rpn_batch: int = 64
    rpn_positive_fraction: float = 0.5
    rpn_iou: tuple[float, float] = (0.7, 0.3)
    rpn_pre_nms: int = 6000
    rpn_nms_iou: float = 0.7
    num_proposals: int = 300
    box_batch: int = 256
    box_positive_fraction: float = 0.25
    box_iou: tuple[float, float] = (0.5, 0.5)
    add_gt_proposals: bool = False
    crop_size: int = 14
    nms_iou: float = 0.6
    max_per_class: int = 100
    max_detections: int = 100
    score_threshold: float = 0.0

    @nn.compact
    def __call__(self, images, image_hw, gt_boxes=None, gt_classes=None, gt_valid=None,
                 train: bool = False):
        """images [B, H, W, 3]; image_hw [B, 2] valid size in pixels; in training the
        padded ground truth gt_boxes [B, G, 4] (normalised to the input), gt_classes
        [B, G], gt_valid [B, G]. Returns a dict of named outputs (see the task)."""
        if self.num_classes < 1:
            raise ValueError("faster_rcnn: set model.num_classes to the number of object "
                             "classes, background not counted (80 for COCO, 20 for VOC).")
        b, h, w = images.shape[:3]
        _, x = self.stem(images, train)
        plan = self.stage_plan(FEATURE_STRIDE)
        for i in range(3):
            x = self.stage(x, i, *plan[i], train)
        feat = x
        hf, wf = feat.shape[1:3]
        anchors = jnp.asarray(anchor_lib.grid_anchors(
            (hf, wf), FEATURE_STRIDE, self.anchor_base_size, self.anchor_scales,
            self.anchor_ratios), jnp.float32)
        num_a = len(self.anchor_scales) * len(self.anchor_ratios)
        image_hw = image_hw.astype(jnp.float32)

        r = nn.relu(nn.Conv(self.rpn_channels, (3, 3), dtype=self.dtype, name="rpn_conv",
                            kernel_init=nn.initializers.normal(0.01))(feat))
        objectness = nn.Conv(num_a, (1, 1), dtype=self.dtype, name="rpn_objectness",
                             kernel_init=nn.initializers.normal(0.01))(r)
        rpn_deltas = nn.Conv(4 * num_a, (1, 1), dtype=self.dtype, name="rpn_deltas",
                             kernel_init=nn.initializers.normal(0.01))(r)
        objectness = objectness.reshape(b, -1).astype(jnp.float32)
        rpn_deltas = rpn_deltas.reshape(b, -1, 4).astype(jnp.float32)

        # Per device: NMS loops until its slowest image is done (see per_data_shard).
        proposals, proposal_valid = per_data_shard(
            jax.vmap(self._propose, in_axes=(None, 0, 0, 0)), (None, 0, 0, 0))(
            anchors, objectness, rpn_deltas, image_hw)
        proposals = jax.lax.stop_gradient(proposals)
        out = {"rpn_objectness": objectness, "rpn_deltas": rpn_deltas}

        if train:
            if gt_boxes is None:
                raise ValueError("faster_rcnn: training needs gt_boxes, gt_classes and "
                                 "gt_valid.")
            gt_px = gt_boxes.astype(jnp.float32) * jnp.array([h, w, h, w], jnp.float32)
            rng_rpn, rng_box = jax.random.split(self.make_rng("dropout"))
            keys_rpn, keys_box = jax.random.split(rng_rpn, b), jax.random.split(rng_box, b)
            usable = jax.vmap(_anchor_usable, in_axes=(None, 0))(anchors, image_hw)
            at = jax.vmap(targets.anchor_targets,
                          in_axes=(None, 0, 0, 0, 0, None, None, None))(
                anchors, usable, gt_px, gt_valid, keys_rpn, self.rpn_batch,
                self.rpn_positive_fraction, tuple(self.rpn_iou))
            rt = jax.vmap(targets.roi_targets,
                          in_axes=(0, 0, 0, 0, 0, 0, None, None, None, None))(
                proposals, proposal_valid, gt_px, gt_classes, gt_valid, keys_box,
                self.box_batch, self.box_positive_fraction, tuple(self.box_iou),
                self.add_gt_proposals)
            out.update(rpn_targets=at._asdict(), roi_targets=rt._asdict())
            rois = jax.lax.stop_gradient(rt.rois)
        else:
            rois = proposals

        class_logits, box_deltas = self._box_classifier(feat, rois, train)
        out.update(class_logits=class_logits, box_deltas=box_deltas)
        if not train:
            out.update(per_data_shard(jax.vmap(self._detect), (0,) * 5)(
                rois, proposal_valid, class_logits, box_deltas, image_hw))
            out["proposals"], out["proposal_valid"] = proposals, proposal_valid
        return out

    def _propose(self, anchors, objectness, deltas, image_hw):
        usable = _anchor_usable(anchors, image_hw)
        scores = jnp.where(usable, objectness, _NEVER)
        k = min(self.rpn_pre_nms, anchors.shape[0])
        top, idx = jax.lax.top_k(scores, k)
        cand = box_lib.clip(box_lib.decode(deltas[idx], anchors[idx]), image_hw)
        keep, valid = nms_lib.nms(cand, top, self.rpn_nms_iou, self.num_proposals,
                                  score_threshold=_NEVER / 2)
        return cand[keep], valid

    def _box_classifier(self, feat, rois, train: bool):
        """[B, S, C+1] logits and [B, S, C, 4] deltas for rois [B, S, 4] (pixels)."""
        b, s = rois.shape[:2]
        hf, wf = feat.shape[1:3]
        # Feature pixel k's centre is input pixel (k + 1/2) * stride; crop_and_resize
        # puts 0 and 1 at the first and last pixel centres.
        denom = jnp.array([max(hf - 1, 1), max(wf - 1, 1)] * 2, jnp.float32)
        norm = (rois / FEATURE_STRIDE - 0.5) / denom
        size = (self.crop_size, self.crop_size)
        crops = jax.vmap(roi_align.crop_and_resize, in_axes=(0, 0, None))(feat, norm, size)
        crops = crops.reshape(b * s, *crops.shape[2:]).astype(self.dtype)
        crops = nn.max_pool(crops, (2, 2), (2, 2))
        y = self.stage(crops, 3, 1, 1, train)
        pooled = y.mean(axis=(1, 2))
        c = self.num_classes
        logits = nn.Dense(c + 1, dtype=self.dtype, name="box_classifier_logits",
                          kernel_init=nn.initializers.normal(0.01))(pooled)
        deltas = nn.Dense(4 * c, dtype=self.dtype, name="box_classifier_deltas",
                          kernel_init=nn.initializers.normal(0.001))(pooled)
        return (logits.astype(jnp.float32).reshape(b, s, c + 1),
                deltas.astype(jnp.float32).reshape(b, s, c, 4))

    def _detect(self, rois, roi_valid, logits, deltas, image_hw):
        """Per-class decoding and NMS of one image; boxes normalised to the image."""
        per_class = box_lib.decode(deltas, jnp.broadcast_to(rois[:, None], deltas.shape))
        per_class = box_lib.clip(per_class, image_hw)
        scores = jax.nn.softmax(logits)[:, 1:]
        scores = jnp.where(roi_valid[:, None], scores, -1.0)
        det = nms_lib.multiclass_nms(per_class, scores, self.nms_iou,
                                     min(self.max_per_class, rois.shape[0]),
                                     self.max_detections, score_threshold=max(
                                         self.score_threshold, 0.0))
        scale = jnp.concatenate([image_hw, image_hw])
        return {"detection_boxes": det["boxes"] / scale,
                "detection_scores": jnp.where(det["valid"], det["scores"], 0.0),
                "detection_classes": det["classes"],
                "detection_valid": det["valid"]}
