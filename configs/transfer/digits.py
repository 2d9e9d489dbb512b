"""Transfer to real handwritten digits (sklearn_digits: 1,297 train / 500 test, 10 classes).

From scratch, or from a pre-trained demo checkpoint, with or without a frozen body:

    python -m big_vision_like.train --config configs/transfer/digits.py \
        --workdir workdirs/digits_finetune --config.input.data.data_dir=data/tfds \
        --config.init_from.checkpoint=workdirs/demo/checkpoints/1500 \
        [--config.frozen='^(conv1|conv[2-5])']

`configs/transfer/digits.py:tiny` is the 32-px, few-step variant the tests run.
"""

import ml_collections

from configs.transfer.common import Target, transfer_config


def target(size: str = "demo") -> Target:
    if size == "tiny":
        # Slices: the tests' runs extract features of every image, at -O0.
        return Target(data="sklearn_digits/32px", train_split="train[:400]",
                      test_split="test[:200]",
                      image_size=32, num_classes=10, label_pp="",
                      augment="resize(36)|random_crop(32)",
                      eval_resize="resize(36)|central_crop(32)", total_steps=6, batch_size=16)
    # No flips: digits are not mirror-symmetric. Slight shifts and scale only.
    return Target(data="sklearn_digits/64px", train_split="train", test_split="test",
                  image_size=64, num_classes=10, label_pp="",
                  augment="resize(72)|random_crop(64)",
                  eval_resize="resize(72)|central_crop(64)")


def get_config(size: str | None = None) -> ml_collections.ConfigDict:
    return transfer_config(target(size or "demo"))
