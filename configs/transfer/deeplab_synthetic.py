"""Section 5.3 offline: DeepLab-ASPP-L on synthetic_jft, transferred from the demo.

Classes: background and the four shape families (polygon, star, round, ...)
of synthetic_jft's taxonomy. The dataset's label map holds object index + 1;
`semantic_from_instances` turns it into family ids from each object's leaf
class (`input.label_pp`), so every pixel of an object is labelled with a class
that pre-training saw only as an image-level label's ancestor.

    python -m big_vision_like.train --config configs/transfer/deeplab_synthetic.py \
        --workdir workdirs/seg_synthetic --config.input.data.data_dir=data/tfds \
        --config.init_from.checkpoint=workdirs/demo/checkpoints/1500

`configs/transfer/deeplab_synthetic.py:tiny` is the synthetic_jft/tiny variant the
tests run. Trains on `fasteval` (images pre-training did not see), tests on `test`.
"""

import ml_collections

from configs import demo
from configs.transfer.deeplab_common import DECODE_LABEL_MAP, SegTarget, deeplab_config
from input_pipeline.sources.synthetic_jft import taxonomy

LEVEL = "family"
NUM_CLASSES = taxonomy.num_semantic_classes(LEVEL)  # background + the families
CLASS_NAMES = ("background", *taxonomy.SEMANTIC_LEVELS[LEVEL])
LABEL_PP = f"{DECODE_LABEL_MAP}|semantic_from_instances(level={LEVEL!r})"


def target(size: str = "demo") -> SegTarget:
    body = {k: v for k, v in demo.get_config().model.items()
            if k in ("depth", "width", "dtype")}
    body.update(output_stride=8, rates=(6, 12, 18, 24))
    classes = dict(num_classes=NUM_CLASSES, class_names=CLASS_NAMES, label_pp=LABEL_PP,
                   hierarchy="dataset", model=body, base_lr=1e-2)
    if size == "tiny":
        return SegTarget(data="synthetic_jft/tiny", train_split="fasteval",
                         test_split="test[:128]", image_size=32, total_steps=4,
                         batch_size=8, eval_batch_size=64, **classes)
    return SegTarget(data="synthetic_jft/demo", train_split="fasteval", test_split="test",
                     image_size=64, total_steps=1000, batch_size=16, eval_every_steps=500,
                     eval_batch_size=64, **classes)


def get_config(size: str | None = None) -> ml_collections.ConfigDict:
    return deeplab_config(target(size or "demo"))
