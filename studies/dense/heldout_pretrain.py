"""The demo's pre-training with one shape family held out of the labels, so that
detecting that family afterwards (configs/transfer/faster_rcnn_synthetic.py:
heldout) transfers to a class pre-training never saw as a label.

The training classes are every class outside the family's subtree
(`input.data.classes`; taxonomy.classes_outside): the family, its shapes,
colours and leaves are no output, and images labelled with nothing else are
left out. Images that also hold other objects stay, so pre-training does see
the family's pixels, unlabelled (and the noisy training labels may name one of
its objects as a look-alike of another family).

    python -m big_vision_like.train --config studies/dense/heldout_pretrain.py \
        --workdir workdirs/pretrain_heldout --config.input.data.data_dir=data/tfds
"""

import ml_collections

from configs import demo
from configs.transfer.faster_rcnn_synthetic import HELD_OUT
from input_pipeline.sources.synthetic_jft import taxonomy

# Leaves of each synthetic_jft size (its builder's configs; tests check them).
NUM_LEAVES = {"demo": 500, "tiny": 40}


def get_config(size: str | None = None) -> ml_collections.ConfigDict:
    c = demo.get_config(size)
    names = taxonomy.build_taxonomy(NUM_LEAVES[size or "demo"]).names
    c.input.data.classes = taxonomy.classes_outside(names, HELD_OUT)
    return c
