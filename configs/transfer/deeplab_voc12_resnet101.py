"""Section 5.3: semantic segmentation on PASCAL VOC 2012 with DeepLab-ASPP-L on the
JFT-300M ResNet-101 (paper Table 12: mean IoU and IoU per class).

Paper: DeepLab-ASPP-L (four 3x3 atrous branches, rates 6/12/18/24, summed)
on ResNet-101 at output stride 8; 513x513 inputs, batch 6, SGD with momentum
0.9, learning rate 1e-3 with 'poly' decay (power 0.9), weight decay 5e-4,
30k iterations, no data augmentation; trained on the SBD-augmented `train_aug`
set (10,582 images: the paper's DeepLab setting), mean IoU on `val`. Where
train_aug is not prepared (it needs SBD's masks beside VOC 2012; see
input_pipeline/sources/voc2012/builder.py), the run stops before step 1 with
the message saying how to add it, or to train on the 1,464 `train` images:
--config.input.data.split=train. The paper's rate at the paper's batch: the
factor of configs/lr_policy.py is 1.

    python -m big_vision_like.train --config configs/transfer/deeplab_voc12_resnet101.py \
        --workdir workdirs/voc_deeplab --config.input.data.data_dir=<tfds dir> \
        --config.init_from.checkpoint=<jft workdir>/checkpoints/720000

Weight decay applies to every convolution kernel, body and ASPP alike (not
to batch-norm parameters or biases, as everywhere in this project).
Images (at most 500 px a side) and label maps are padded to 513x513 as
DeepLab does, label maps with the ignore label 255, images with mid-grey
(0 after value_range), so no pixel is resampled. Another dataset name or split:
--config.input.data.name=...,
--config.input.data.split=..., --config.evals.test.data.split=...; another
label encoding: --config.input.label_pp=....
"""

import ml_collections

from configs.transfer.deeplab_common import DECODE_LABEL_MAP, SegTarget, deeplab_config
from input_pipeline.sources.class_names import VOC_SEGMENTATION_CLASSES as VOC_CLASSES

KEYS = ("image", "segmentation")


def get_config() -> ml_collections.ConfigDict:
    return deeplab_config(SegTarget(
        data="voc2012_segmentation", train_split="train_aug", test_split="val",
        image_size=513, num_classes=len(VOC_CLASSES), label_pp=DECODE_LABEL_MAP,
        model=dict(depth=101, width=1.0, output_stride=8, rates=(6, 12, 18, 24),
                   dtype="bfloat16"),
        total_steps=30_000, batch_size=6, base_lr=1e-3, weight_decay=5e-4,
        class_names=VOC_CLASSES, eval_every_steps=10_000, eval_batch_size=8,
        fit_pp=(f"pad_to(513, keys={KEYS}, fill=128)|central_crop(513, keys={KEYS})")))
