"""Faster R-CNN ResNet-101 on PASCAL VOC 2007 (paper section 5.2, Table 5).

Trains on VOC 2007 trainval, tests on its 4,952 test images with VOC07's
11-point mAP at IoU 0.5 ('difficult' objects ignored). The paper: learning
rate 3e-4 for 700K steps of one image, divided by 10 after 500K; at batch 8,
87.5K steps at 2.4e-3, divided by 10 after 62.5K
(configs/transfer/detection_common.py says why).

    python -m big_vision_like.train --config configs/transfer/faster_rcnn_voc07_resnet101.py \
        --workdir workdirs/det_voc07 --config.input.data.data_dir=data/tfds \
        --config.init_from.checkpoint=workdirs/jft300m/checkpoints/<step>
"""

import ml_collections

from configs.transfer.detection_common import DetTarget, detection_config
from input_pipeline.sources.class_names import VOC_CLASSES


def get_config() -> ml_collections.ConfigDict:
    return detection_config(DetTarget(
        data="voc2007_detection", train_split="trainval", test_split="test",
        num_classes=len(VOC_CLASSES), class_names=VOC_CLASSES, evaluator="voc_ap",
        images_total=700_000, images_lr_drop=500_000, lr_per_image=3e-4,
        model=dict(max_detections=100, nms_iou=0.6)))
