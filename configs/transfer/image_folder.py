"""Transfer to a folder of your own labelled images, one sub-folder per class:

    root/train/<class>/*.jpg   root/test/<class>/*.jpg   (.jpeg and .png too)

    python -m big_vision_like.train --config configs/transfer/image_folder.py:/data/flowers \
        --workdir workdirs/flowers --config.input.data.data_dir=data/tfds \
        --config.init_from.checkpoint=workdirs/demo/checkpoints/1500 \
        [--config.frozen='^(conv1|conv[2-5])']

The dataset is `image_folder:<root>` (input_pipeline/sources/local_formats): TFDS's
ImageFolder reads the folder, classes are the sub-folder names in TFDS's sorted
order, and the first run writes a prepared copy into data_dir. The class count
is the dataset's. Other split names: --config.input.data.split=training and the
evaluators' data fields (evals.test.data.split, evals.fewshot.data_train.split...).
Photos come at any size: they are resized to 72 px and cropped to 64 like the demo.
"""

import ml_collections

from configs.transfer.common import Target, transfer_config

DEFAULT_ROOT = "data/image_folder"


def target(root: str = DEFAULT_ROOT, size: str = "demo") -> Target:
    if size == "tiny":  # 32 px, a few steps: what the tests run
        return Target(data=f"image_folder:{root}", train_split="train", test_split="test",
                      image_size=32, num_classes=None, label_pp="",
                      augment="resize(36)|random_crop(32)|flip_lr",
                      eval_resize="resize(36)|central_crop(32)", total_steps=4,
                      batch_size=16)
    return Target(data=f"image_folder:{root}", train_split="train", test_split="test",
                  image_size=64, num_classes=None, label_pp="",
                  augment="resize(72)|random_crop(64)|flip_lr",
                  eval_resize="resize(72)|central_crop(64)")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """arg: the folder, optionally with ',tiny' (`image_folder.py:/data/flowers,tiny`)."""
    root, _, size = (arg or DEFAULT_ROOT).partition(",")
    return transfer_config(target(root, size or "demo"))
