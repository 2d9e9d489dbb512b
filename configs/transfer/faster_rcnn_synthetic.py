"""Section 5.2 offline: Faster R-CNN on synthetic_jft, transferred from the demo.

Objects are the images' shapes, classed by shape family (4 classes), boxes from
the dataset's per-object boxes. The 64-px demo images are resized to 128 px
(conv4 maps of 8x8) and the anchors scaled to the objects (base 64 px). The
body is the demo's ResNet-18 at quarter width; `init_from` loads the demo's
pre-trained checkpoint, `frozen='^(conv1|conv[2-4])'` freezes conv1-4.

    python -m big_vision_like.train --config configs/transfer/faster_rcnn_synthetic.py \
        --workdir workdirs/det_synthetic --config.input.data.data_dir=data/tfds \
        --config.init_from.checkpoint=workdirs/demo/checkpoints/1500

Ground-truth boxes join the proposals in training (`add_gt_proposals`, as
Detectron does; the paper's implementation does not), so the box classifier
has positives from the first step of a short run.
`configs/transfer/faster_rcnn_synthetic.py:tiny` is the synthetic_jft/tiny
variant the tests run; `:heldout` (or `:tiny,heldout`) detects only the star
family, the one studies/dense/heldout_pretrain.py never labels. Trains on
`fasteval` (images pre-training did not see).
"""

import dataclasses

import ml_collections

from configs import demo
from configs.transfer.detection_common import DetTarget, detection_config
from input_pipeline.sources.synthetic_jft import taxonomy

LEVEL = "family"
CLASS_NAMES = taxonomy.SEMANTIC_LEVELS[LEVEL]


# The family the held-out variant detects, which its pre-training never labels
# (studies/dense/heldout_pretrain.py).
HELD_OUT = "star"


def target(size: str = "demo") -> DetTarget:
    body = {k: v for k, v in demo.get_config().model.items() if k in ("depth", "width")}
    small = dict(anchor_scales=(0.5, 1.0, 2.0), rpn_channels=64, rpn_batch=64,
                 rpn_pre_nms=300, num_proposals=64, box_batch=32, add_gt_proposals=True,
                 max_per_class=20, max_detections=20)
    common = dict(train_split="fasteval", num_classes=len(CLASS_NAMES),
                  class_names=CLASS_NAMES, evaluator="coco_ap", level=LEVEL, hierarchy="dataset",
                  max_objects=8, lr_per_image=1e-3, **body)
    if size == "tiny":
        return DetTarget(data="synthetic_jft/tiny", test_split="test[:64]", batch_size=8,
                         images_total=16, images_lr_drop=8, min_size=64, max_size=64,
                         model=dict(anchor_base_size=32.0, **small), eval_batch_size=16,
                         **common)
    return DetTarget(data="synthetic_jft/demo", test_split="test[:1000]", batch_size=16,
                     images_total=16 * 400, images_lr_drop=16 * 300, min_size=128,
                     max_size=128, model=dict(anchor_base_size=64.0, **small),
                     eval_batch_size=40, **common)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """arg: comma-separated options: 'tiny' (synthetic_jft/tiny), 'heldout' (detect
    only HELD_OUT, one class)."""
    options = set((arg or "").split(",")) - {""}
    if options - {"tiny", "demo", "heldout"}:
        raise ValueError(f"faster_rcnn_synthetic:{arg}: options are tiny, heldout.")
    t = target("tiny" if "tiny" in options else "demo")
    if "heldout" in options:
        t = dataclasses.replace(t, num_classes=1, class_names=(HELD_OUT,),
                                families=(HELD_OUT,))
    c = detection_config(t)
    c.log_steps = 50
    # The chance level the trained detector is read against: random boxes on the
    # same test images (tasks/detection.random_boxes).
    c.evals.random_boxes = {**c.evals.test.to_dict(), "pred": "random_boxes"}
    return c
