"""Faster R-CNN ResNet-101 on COCO (paper section 5.2, Table 4 and Figure 4).

The paper: learning rate 4e-4 for 3M steps of one image, divided by 10 after
2.5M; synchronously at batch 8 that is 375K steps at 3.2e-3, divided by 10
after 312.5K (see configs/transfer/detection_common.py). Frozen conv1-4 (Figure
4's red curve): `--config.frozen='^(conv1|conv[2-4])'`, and the paper's shorter
schedule for it, 1.5M images with the drop at 900K:
`--config.total_steps=187500 --config.schedule.boundaries_steps='(112500,)'`.

    python -m big_vision_like.train --config configs/transfer/faster_rcnn_coco_resnet101.py \
        --workdir workdirs/det_coco --config.input.data.data_dir=data/tfds \
        --config.init_from.checkpoint=workdirs/jft300m/checkpoints/<step> \
        --config.evals.test.results_json=workdirs/det_coco/detections.json

The results JSON holds the validation detections in COCO's format (category
ids restored), which the pose task takes as person boxes.

Splits: by default trains on train2017 (118K images) and evaluates on val2017
(5,000: the 2014 'minival' of later papers), so its figures are not comparable
digit for digit with the paper's. The paper's minival* is another set, 8,000
images held out of val2014, with the rest of val2014 added to training. Since
train2017 + val2017 hold exactly train2014 + val2014, an id list of those
8,000 images selects it on both sides (input_pipeline/image_ids.py; the list
is the user's, one COCO image id a line, e.g. the `images` of Detectron's
instances_minival2014.json):

    --config.input.data.split=train+val \
    --config.input.data.drop_image_ids=minival_star.txt \
    --config.evals.test.data.split=train+val \
    --config.evals.test.data.keep_image_ids=minival_star.txt

Choosing reads the whole train+val split at each evaluation (TFRecords have no
index by id): evaluate rarely (`--config.evals.test.every_steps`) or only at
the end.
"""

import ml_collections

from configs.transfer.detection_common import DetTarget, detection_config
from input_pipeline.sources.class_names import COCO_CATEGORY_IDS, COCO_CLASS_NAMES


def get_config() -> ml_collections.ConfigDict:
    c = detection_config(DetTarget(
        data="coco_detection", train_split="train", test_split="val",
        num_classes=len(COCO_CLASS_NAMES), class_names=COCO_CLASS_NAMES,
        evaluator="coco_ap", images_total=3_000_000, images_lr_drop=2_500_000,
        lr_per_image=4e-4,
        # COCO: up to 100 detections per image over all classes (its AP's maxDets).
        model=dict(max_detections=100, nms_iou=0.6)))
    # Results JSON rows carry COCO's category ids, not the 0-based labels.
    c.evals.test.category_ids = COCO_CATEGORY_IDS
    return c
