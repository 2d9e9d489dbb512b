"""Faster R-CNN ResNet-101 on PASCAL VOC (paper section 5.2, Table 3).

As the paper: trains on the 16,551 'trainval' images of VOC 2007 and 2012
(`voc0712_detection`), tests on VOC 2007's 4,952 test images with VOC07's
11-point mAP at IoU 0.5 ('difficult' objects ignored). `:07` trains on VOC
2007 trainval alone (5,011 images). The paper: learning rate 3e-4 for 700K
steps of one image, divided by 10 after 500K; at batch 8, 87.5K steps at
2.4e-3, divided by 10 after 62.5K (configs/transfer/detection_common.py says
why).

    python -m big_vision_like.train --config configs/transfer/faster_rcnn_voc07_resnet101.py \
        --workdir workdirs/det_voc --config.input.data.data_dir=data/tfds \
        --config.init_from.checkpoint=workdirs/jft300m/checkpoints/<step>
"""

import ml_collections

from configs.transfer.detection_common import DetTarget, detection_config
from input_pipeline.sources.class_names import VOC_CLASSES

DATA = {"0712": "voc0712_detection", "07": "voc2007_detection"}


def get_config(train: str | None = None) -> ml_collections.ConfigDict:
    """train: '0712' (default, the paper's) or '07'."""
    if (train or "0712") not in DATA:
        raise ValueError(f"faster_rcnn_voc07_resnet101:{train}: use one of {sorted(DATA)}.")
    return detection_config(DetTarget(
        data=DATA[train or "0712"], train_split="trainval", test_split="test",
        num_classes=len(VOC_CLASSES), class_names=VOC_CLASSES, evaluator="voc_ap",
        images_total=700_000, images_lr_drop=500_000, lr_per_image=3e-4,
        model=dict(max_detections=100, nms_iou=0.6)))
