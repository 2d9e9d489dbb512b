"""The paper's JFT recipe on Open Images, the public stand-in for JFT, from local files.

Prepare the dataset once from the downloaded files (input_pipeline/sources/open_images):

    python -m input_pipeline.prepare --dataset open_images_labels/human_machine \
        --data_dir DIR --manual_dir FOLDER_WITH_THE_CSVS_AND_IMAGES

then train:

    python -m big_vision_like.train --config configs/open_images_resnet101.py \
        --workdir workdirs/oi --config.input.data.data_dir=DIR

Everything but the data is configs/jft300m_resnet101.py (ResNet-101 at 299 px,
per-label sigmoid loss on hierarchy-filled labels, RMSProp, staircase decay
counted in examples); the head is as wide as the dataset's class list. Open
Images has ~9M training images, not 300M, so training is counted in epochs.

Beyond the paper: Open Images says which labels a human verified absent
(`negative_labels`). `--config.loss_kw.unknown_weight=0.1` makes every label
that is neither a positive nor a verified negative (the class may be in the
image, unlabelled) weigh 0.1 in the loss; 1.0 (the default) is the paper's
loss. Both pp strings keep the negatives, so only the field changes.

The validation mAP@100 counts every unverified class as absent; Open Images'
own protocol scores verified labels only, so these numbers are lower.

`configs/open_images_resnet101.py:tiny` is the 32-px, 2-step variant the tests run.
"""

import ml_collections
from ml_collections.config_dict import placeholder

from configs import jft300m_resnet101
from input_pipeline.pp.recipes import paper_eval, paper_train

DATA = "open_images_labels/human_machine"
# Positives with ancestors filled in, verified negatives with descendants (no
# 'Animal' means no 'Dog'; a verified absent 'Dog' says nothing of 'Animal').
LABELS = ("|multi_hot|multi_hot(key='negative_labels', fill_ancestors=False, "
          "fill_descendants=True)|keep('image', 'labels', 'negative_labels')")


def get_config(size: str | None = None) -> ml_collections.ConfigDict:
    c = jft300m_resnet101.get_config()
    c.input.data.update(name=DATA, split="train")
    c.input.pp = paper_train() + LABELS
    c.input.shuffle_buffer = 100_000
    c.total_examples = placeholder(int)
    c.total_epochs = 30.0
    c.keep_ckpt_examples = placeholder(tuple)
    # Class count from the dataset; prior of ~5 positives in ~20K classes.
    c.model.num_classes = placeholder(int)
    c.model.head_bias_init = -8.0
    c.loss_kw = dict(unknown_weight=1.0)
    eval_pp = paper_eval() + LABELS
    c.evals = ml_collections.ConfigDict()  # jft's fasteval14k does not apply
    c.evals.validation = dict(type="map_at_k", k=100, weights="uniform",
                              data=dict(split="validation"), pp=eval_pp, every_steps=10_000)
    c.evals.validation_loss = dict(type="loss", data=dict(split="validation"), pp=eval_pp,
                                   every_steps=10_000)
    if size == "tiny":
        _shrink(c)
    elif size is not None:
        raise ValueError(f"open_images_resnet101: unknown size {size!r}; use 'tiny' or none.")
    return c


def _shrink(c: ml_collections.ConfigDict) -> None:
    """32 px, ResNet-18 at a quarter width, 2 steps of 8: a smoke run on a fixture."""
    c.input.image_shape = (32, 32, 3)
    c.input.pp = paper_train(32, 36) + LABELS
    c.input.shuffle_buffer = 16
    c.model.update(depth=18, width=0.25, dtype="float32")
    c.batch_size = c.eval_batch_size = 8
    c.total_epochs = None
    c.total_steps = 2
    # The paper-scale warmup would outlast the run: a smoke run trains at its rate.
    c.schedule.warmup_examples = 0
    c.ckpt_steps = c.log_steps = 2
    c.keep_ckpt_examples = None
    for ev in c.evals.values():
        ev.pp = paper_eval(32, 36) + LABELS
        ev.every_steps = 2
