"""Transfer to a label pre-training never saw: how many objects an image holds.

synthetic_jft images, target = number of annotated objects (1, 2, 3 or more:
`object_count(max=3)`). Trains on the `fasteval` split (images pre-training
did not train on) and tests on `test`.

    python -m big_vision_like.train --config configs/transfer/object_count.py \
        --workdir workdirs/count_finetune --config.input.data.data_dir=data/tfds \
        --config.init_from.checkpoint=workdirs/demo/checkpoints/1500

`configs/transfer/object_count.py:tiny` is the synthetic_jft/tiny variant the tests run.
"""

import ml_collections

from configs.transfer.common import Target, transfer_config

COUNT = "object_count(max=3)"


def target(size: str = "demo") -> Target:
    # resize(size) only fixes the static shape (images are that size already).
    # Flips only: a crop could cut an object out of the image and change its count.
    if size == "tiny":
        # A test slice: the tests' runs extract features of every image, at -O0.
        return Target(data="synthetic_jft/tiny", train_split="fasteval",
                      test_split="test[:250]", image_size=32, num_classes=3, label_pp=COUNT,
                      augment="resize(32)|flip_lr", eval_resize="resize(32)", total_steps=6,
                      batch_size=16)
    return Target(data="synthetic_jft/demo", train_split="fasteval", test_split="test",
                  image_size=64, num_classes=3, label_pp=COUNT, augment="resize(64)|flip_lr",
                  eval_resize="resize(64)")


def get_config(size: str | None = None) -> ml_collections.ConfigDict:
    return transfer_config(target(size or "demo"))
