"""What every Faster R-CNN config shares (paper section 5.2).

The TF Object Detection API's Faster R-CNN ResNet-101 recipe, as the paper ran
it: images resized to shorter side 600 / longer at most 1024 keeping the
aspect ratio (padded to 1024x1024, so every batch has one static shape),
random horizontal flip as the only augmentation, RPN minibatch 64 and box
classifier minibatch 256 per image, SGD with momentum 0.9, gradient norm
clipped at 10, learning rate divided by 10 once.

Synchronous translation. The paper trained asynchronously, 9 workers of one
image each, for 3M (COCO) / 700K (VOC) steps: that is 3M / 700K images, each
gradient applied with learning rate 4e-4 / 3e-4. Here a step averages the
gradients of `batch_size` images (spread over `data`), so steps are images /
batch_size and the learning rate is scaled by batch_size (configs/lr_policy.py,
the policy of every paper config; a factor of 8 needs no warmup there); at
batch 8 COCO runs 375K steps at 3.2e-3, divided by 10 after 312.5K.
Batch-norm statistics are those of the global batch.
"""

from __future__ import annotations

import dataclasses

import ml_collections
from ml_collections.config_dict import placeholder

from big_vision_like.config import schema
from configs import lr_policy

FROZEN_CONV1_4 = "^(conv1|conv[2-4])"  # Figure 4's frozen feature extractor
PACKED = ("'image', 'image_hw', 'boxes', 'classes', 'box_valid', 'is_crowd', "
          "'difficult'")
GT = ("'orig_hw', 'gt_boxes', 'gt_classes', 'gt_iscrowd', 'gt_difficult', 'gt_areas', "
      "'gt_valid', 'image_id'")


@dataclasses.dataclass(frozen=True)
class DetTarget:
    data: str  # TFDS name
    train_split: str
    test_split: str
    num_classes: int  # object classes, background not counted
    class_names: tuple[str, ...]
    evaluator: str  # 'coco_ap' or 'voc_ap'
    images_total: int  # the paper's steps of one image each
    images_lr_drop: int
    lr_per_image: float  # the paper's learning rate at one image per step
    batch_size: int = 8
    depth: int = 101
    width: float = 1.0
    min_size: int = 600
    max_size: int = 1024
    max_objects: int = 100  # ground-truth boxes kept per image
    level: str | None = None  # synthetic_jft: the class level of its leaf labels
    families: tuple[str, ...] = ()  # synthetic_jft: detect only these families
    # 'dataset' where `level` needs the builder's class names (synthetic_jft)
    hierarchy: str = "none"
    model: dict = dataclasses.field(default_factory=dict)  # FasterRCNN field overrides
    eval_batch_size: int = 8


def detection_config(t: DetTarget) -> ml_collections.ConfigDict:
    c = schema.base()
    total_steps = max(1, t.images_total // t.batch_size)
    c.update(batch_size=t.batch_size, total_steps=total_steps, log_steps=100,
                   log_every_seconds=10.0, ckpt_steps=max(1, min(10_000, total_steps)),
                   keep_ckpts=2)
    c.input.data.update(name=t.data, split=t.train_split)
    c.input.image_shape = (t.max_size, t.max_size, 3)
    c.input.pp = (f"{_resize_pp(t)}|flip_lr(boxes='objects/bbox')|{_pack_pp(t)}"
                  f"|keep({PACKED})")
    c.input.hierarchy = t.hierarchy
    c.input.shuffle_buffer = 1_000
    c.input.skip_corrupt = True
    c.input.prefetch = 2

    c.model = dict(name="faster_rcnn", depth=t.depth, width=t.width,
                   num_classes=t.num_classes, dtype="float32", **t.model)
    c.detection = dict(loss_weights=dict(rpn_objectness=1.0, rpn_box=2.0, box_classes=1.0,
                                         box_refinement=2.0))
    c.optimizer = schema.optimizer_section("momentum", momentum=0.9, weight_decay=0.0,
                                           grad_clip_norm=10.0)
    lr, warmup = lr_policy.synchronous(t.lr_per_image, 1, t.batch_size, t.images_total)
    c.schedule = schema.schedule_section(
        "piecewise", base_lr=lr, warmup_examples=warmup,
        boundaries_steps=(max(1, t.images_lr_drop // t.batch_size),), factors=(0.1,))
    c.task = "detection"
    c.init_from.skip = "^(head|rpn_|box_classifier_)"

    end = 10 ** 9  # at the end only
    c.evals.test = dict(type=t.evaluator, data=schema.eval_data(t.test_split), every_steps=end,
                        # A path: also write the detections as a COCO results JSON.
                        results_json=placeholder(str),
                        pp=f"{_resize_pp(t)}|{_pack_pp(t)}|keep({PACKED}, {GT})")
    if t.evaluator == "voc_ap":  # names its per-class APs (coco_ap reports no such)
        c.evals.test.class_names = tuple(t.class_names)
    c.eval_batch_size = t.eval_batch_size
    return c


def _resize_pp(t: DetTarget) -> str:
    return f"decode|resize_aspect({t.min_size}, {t.max_size})"


def _pack_pp(t: DetTarget) -> str:
    # synthetic_jft's leaf classes packed as shape families (its own op).
    level = f"|objects_to_level({t.level!r})" if t.level else ""
    if t.families:
        level += f"|objects_of_families({tuple(t.families)!r})"
    # pad_to pads to at least the size; the crop (a no-op after resize_aspect) gives
    # the image the static shape batching needs.
    return (f"pad_to({t.max_size}, boxes='objects/bbox')"
            f"|central_crop({t.max_size}, boxes='objects/bbox')|value_range(-1, 1)"
            f"{level}|detection_pack({t.max_objects})")
