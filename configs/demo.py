"""The offline demo: a small ResNet pre-trained on synthetic_jft/demo at 64 px.

Runs on a CPU in under 10 minutes on 2 cores: generates the dataset on first
use, trains with the paper's per-label sigmoid loss on hierarchy-filled
labels, evaluates on the clean fasteval split as it goes, checkpoints.

    python -m big_vision_like.train --config configs/demo.py --workdir workdirs/demo
"""

import ml_collections
from ml_collections.config_dict import placeholder

from configs.common import (
    data_fields,
    set_mesh_and_sharding,
    set_recovery_fields,
    set_transfer_fields,
)


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.batch_size = 128
    c.total_steps = 1500
    c.total_epochs = placeholder(float)  # set one of these to override total_steps
    c.total_examples = placeholder(int)
    c.log_steps = 50
    c.log_every_seconds = 10.0
    c.ckpt_steps = 500
    c.keep_ckpts = 2
    c.keep_ckpt_every_steps = placeholder(int)  # also keep every N-th step
    c.keep_ckpt_steps = placeholder(tuple)  # also keep these (or in epochs, examples)
    c.keep_ckpt_epochs = placeholder(tuple)
    c.keep_ckpt_examples = placeholder(tuple)

    set_mesh_and_sharding(c)

    c.input = ml_collections.ConfigDict()
    c.input.data = data_fields("synthetic_jft/demo", "train")
    c.input.image_shape = (64, 64, 3)
    c.input.pp = ("decode|resize(72)|random_crop(64)|flip_lr|value_range(-1, 1)"
                  "|multi_hot|keep('image', 'labels')")
    c.input.hierarchy = "dataset"  # fill in ancestors from the dataset's hierarchy
    c.input.shuffle_buffer = 10_000
    c.input.skip_corrupt = True
    c.input.prefetch = 2

    # ResNet-18 at a quarter width: ~600 img/s on 2 CPU cores.
    c.model = dict(name="resnet", depth=18, width=0.25, head_bias_init=-5.0,
                   dtype="float32", num_classes=placeholder(int))
    c.loss = "sigmoid_xent"
    c.optimizer = dict(name="momentum", momentum=0.9, weight_decay=1e-4,
                       grad_clip_norm=placeholder(float))  # None: no clipping
    c.schedule = dict(name="cosine", base_lr=0.1, warmup_steps=100)

    # The same resize as training, so objects have the same size in pixels.
    # fasteval labels already hold the monitored classes and their ancestors.
    eval_pp = ("decode|resize(72)|central_crop(64)|value_range(-1, 1)"
               "|multi_hot(fill_ancestors=False)|keep('image', 'labels')")
    c.evals = ml_collections.ConfigDict()
    c.evals.fasteval = dict(type="map_at_k", data=dict(split="fasteval"), pp=eval_pp,
                            every_steps=500, k=100, weights="uniform", baseline=True)
    c.evals.fasteval_loss = dict(type="loss", data=dict(split="fasteval"), pp=eval_pp,
                                 every_steps=500)
    c.eval_batch_size = 256
    set_transfer_fields(c)
    set_recovery_fields(c)
    return c
