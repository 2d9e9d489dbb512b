"""COCO keypoints with G-RMI's pose network on a ResNet-101 body (paper section 5.4).

Person crops of 353x257, disk radius R=32, output stride 8; SGD with momentum 0.9
for 450K steps, the learning rate divided by 10 after 250K. The paper gives
neither the batch nor the rate ("starting with a base learning rate", chosen
per model): batch 32 at 0.005 is this project's choice, so configs/lr_policy.py
has no paper rate to translate here. The body starts from a pre-trained
classification checkpoint:

    python -m big_vision_like.train --config configs/transfer/pose_coco_resnet101.py \
        --workdir workdirs/pose_coco --config.input.data.data_dir=data/tfds \
        --config.init_from.checkpoint=workdirs/jft300m/checkpoints/<step>

Person boxes at evaluation are the ground truth's; `--config.evals.test.detections=
dets.json` (a COCO results JSON, e.g. from the detection task) evaluates end to end.
The dataset name is a field: `--config.input.data.name=...`.
"""

import ml_collections

from configs.transfer.pose_common import PoseTarget, pose_config
from evaluators.keypoint_ap import COCO_SIGMAS

# COCO order: nose, l/r eye, l/r ear, l/r shoulder, l/r elbow, l/r wrist, l/r hip,
# l/r knee, l/r ankle.
COCO_FLIP_PAIRS = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))


def get_config() -> ml_collections.ConfigDict:
    return pose_config(PoseTarget(
        data="coco_keypoints", train_split="train", test_split="val",
        crop=(353, 257), radius=32.0, sigmas=COCO_SIGMAS, flip_pairs=COCO_FLIP_PAIRS,
        depth=101, total_steps=450_000, lr_drop_step=250_000,
        # 20 crops of 353x257 per image: a small evaluation batch bounds host memory.
        eval_batch_size=8))
