"""Pose on synthetic_jft, offline: every object has 5 keypoints (0/1 visibility).

A ResNet-18 at quarter width on 32x32 crops (R=3 pixels), trained from scratch
or from the demo checkpoint (`--config.init_from.checkpoint=workdirs/demo/
checkpoints/1500`); keypoint AP on the test split with ground-truth boxes.

    python -m big_vision_like.train --config configs/transfer/pose_synthetic.py \
        --workdir workdirs/pose_synthetic --config.input.data.data_dir=data/tfds

`configs/transfer/pose_synthetic.py:tiny` is the synthetic_jft/tiny variant the
tests run.
"""

import ml_collections

from configs.transfer.pose_common import PoseTarget, pose_config

# The synthetic objects' keypoints have no left/right meaning: no flips.
SIGMAS = (0.1,) * 5


def target(size: str = "demo") -> PoseTarget:
    common = dict(train_split="train", crop=(32, 32), radius=3.0, sigmas=SIGMAS,
                  flip_pairs=(), depth=18, width=0.25, max_objects=4, base_lr=0.05)
    if size == "tiny":
        return PoseTarget(data="synthetic_jft/tiny", test_split="test[:32]", total_steps=4,
                          lr_drop_step=3, batch_size=16, eval_batch_size=16, **common)
    return PoseTarget(data="synthetic_jft/demo", test_split="test", total_steps=3000,
                      lr_drop_step=2000, batch_size=64, eval_batch_size=64, **common)


def get_config(size: str | None = None) -> ml_collections.ConfigDict:
    return pose_config(target(size or "demo"))
