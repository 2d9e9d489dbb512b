"""What both pose configs share: G-RMI (Papandreou et al. 2017) person crops, the
pose ResNet at output stride 8 with a disk-and-offset head, and a keypoint AP
evaluator on every person of the test images (ground-truth boxes unless
`evals.test.detections` names a COCO results JSON of person detections).
"""

from __future__ import annotations

import dataclasses

import ml_collections
from ml_collections.config_dict import placeholder

from big_vision_like.config import schema


@dataclasses.dataclass(frozen=True)
class PoseTarget:
    data: str  # TFDS name
    train_split: str
    test_split: str
    crop: tuple[int, int]  # (height, width) of a person crop
    radius: float  # disk radius R in crop pixels
    sigmas: tuple[float, ...]  # OKS sigma of each keypoint
    flip_pairs: tuple[tuple[int, int], ...]  # (left, right) keypoint ids
    depth: int = 101
    width: float = 1.0
    total_steps: int = 450_000
    lr_drop_step: int = 250_000
    base_lr: float = 0.005
    batch_size: int = 32
    max_objects: int = 20  # persons per test image (crops per example)
    context: float = 1.25  # box enlargement around a person
    eval_batch_size: int = 32


def pose_config(t: PoseTarget) -> ml_collections.ConfigDict:
    c = schema.base()
    c.update(batch_size=t.batch_size, total_steps=t.total_steps, log_steps=100,
                   log_every_seconds=10.0, ckpt_steps=max(1, min(10_000, t.total_steps)),
                   keep_ckpts=2)

    h, w = t.crop
    flip = f", flip_pairs={tuple(t.flip_pairs)!r}" if t.flip_pairs else ""
    c.input.data.update(name=t.data, split=t.train_split)
    c.input.image_shape = (h, w, 3)
    c.input.pp = (f"decode|pose_crop_train(({h}, {w}), context={t.context}{flip})"
                  "|value_range(-1, 1)|keep('image', 'keypoints')")
    c.input.hierarchy = "none"
    c.input.shuffle_buffer = 2_000
    c.input.skip_corrupt = True
    c.input.prefetch = 2

    num_keypoints = len(t.sigmas)
    c.pose = dict(num_keypoints=num_keypoints, radius=t.radius, heatmap_weight=4.0,
                  offset_weight=1.0, huber_delta=1.0, decoder="hough")
    c.model = dict(name="pose_resnet", depth=t.depth, width=t.width, output_stride=8,
                   upsample=True, dtype="float32")
    c.optimizer = schema.optimizer_section("momentum", momentum=0.9, weight_decay=1e-4)
    # SGD + momentum, lr / 10 after lr_drop_step (the paper's section 5.4).
    c.schedule = schema.schedule_section("piecewise", base_lr=t.base_lr,
                                         boundaries_steps=(t.lr_drop_step,), factors=(0.1,))
    c.task = "pose"
    # The body comes from a classification checkpoint; its head is not used.
    c.init_from.skip = "^(head|keypoint_outputs)/"

    end = 10 ** 9  # at the end only
    c.evals.test = dict(
        type="keypoint_ap", data=dict(split=t.test_split), every_steps=end,
        sigmas=tuple(t.sigmas), nms_threshold=0.5,
        # A COCO results JSON of person detections; None: ground-truth boxes.
        detections=placeholder(str),
        pp=eval_pp(t))
    c.eval_batch_size = t.eval_batch_size
    return c


def eval_pp(t: PoseTarget) -> str:
    h, w = t.crop
    return (f"decode|pose_crop_eval(({h}, {w}), max_objects={t.max_objects}, "
            f"context={t.context})|value_range(-1, 1)"
            "|keep('image', 'pose_windows', 'pose_valid', 'pose_box_scores', 'gt_keypoints',"
            " 'gt_boxes', 'gt_areas', 'gt_iscrowd', 'gt_valid', 'image_id')")
