"""Section 5.3 offline: DeepLab-ASPP-L on synthetic_jft, transferred from the demo.

Classes: background and the objects of an image. `input.label_pp` turns the
dataset's label map (object index + 1, 0 for background) into class ids;
by default the object index itself is the class (5 classes: background and
up to four objects), so the task is instance-slot segmentation. A pp op that
maps objects to their shape family plugs in here:
--config.input.label_pp="decode(channels=1, key='segmentation')|<op>" with
model.num_classes set to its class count.

    python -m big_vision_like.train --config configs/transfer/deeplab_synthetic.py \
        --workdir workdirs/seg_synthetic --config.input.data.data_dir=data/tfds \
        --config.init_from.checkpoint=workdirs/demo/checkpoints/1500

`configs/transfer/deeplab_synthetic.py:tiny` is the synthetic_jft/tiny variant the
tests run. Trains on `fasteval` (images pre-training did not see), tests on `test`.
"""

import ml_collections

from configs import demo
from configs.transfer.deeplab_common import DECODE_LABEL_MAP, SegTarget, deeplab_config

NUM_CLASSES = 5  # background + at most 4 objects per image


def target(size: str = "demo") -> SegTarget:
    body = {k: v for k, v in demo.get_config().model.items()
            if k in ("depth", "width", "dtype")}
    body.update(output_stride=8, rates=(6, 12, 18, 24))
    if size == "tiny":
        return SegTarget(data="synthetic_jft/tiny", train_split="fasteval",
                         test_split="test[:128]",
                         image_size=32, num_classes=NUM_CLASSES, label_pp=DECODE_LABEL_MAP,
                         model=body, total_steps=4, batch_size=8, base_lr=1e-2,
                         eval_batch_size=64)
    return SegTarget(data="synthetic_jft/demo", train_split="fasteval", test_split="test",
                     image_size=64, num_classes=NUM_CLASSES, label_pp=DECODE_LABEL_MAP,
                     model=body, total_steps=1000, batch_size=16, base_lr=1e-2,
                     eval_every_steps=500, eval_batch_size=64)


def get_config(size: str | None = None) -> ml_collections.ConfigDict:
    return deeplab_config(target(size or "demo"))
