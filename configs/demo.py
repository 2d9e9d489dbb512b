"""The offline demo: a small ResNet pre-trained on synthetic_jft/demo at 64 px.

Runs on a CPU in under 10 minutes on 2 cores: generates the dataset on first
use, trains with the paper's per-label sigmoid loss on hierarchy-filled
labels, evaluates on the clean fasteval split as it goes, checkpoints.

    python -m big_vision_like.train --config configs/demo.py --workdir workdirs/demo
"""

import ml_collections
from ml_collections.config_dict import placeholder

from big_vision_like.config import schema


def get_config(size: str | None = None) -> ml_collections.ConfigDict:
    """size: demo (default), or tiny: synthetic_jft/tiny at 32 px for a few steps
    (what tests and the studies' tiny sizes pre-train)."""
    c = schema.base()  # every field, at its default (big_vision_like/config/schema.py)
    c.batch_size = 128
    c.total_steps = 1500  # or total_epochs / total_examples from the shell
    c.log_every_seconds = 10.0
    c.ckpt_steps = 500
    c.keep_ckpts = 2

    c.input.data.name = "synthetic_jft/demo"
    c.input.image_shape = (64, 64, 3)
    c.input.pp = ("decode|resize(72)|random_crop(64)|flip_lr|value_range(-1, 1)"
                  "|multi_hot|keep('image', 'labels')")

    # ResNet-18 at a quarter width: ~600 img/s on 2 CPU cores.
    c.model = dict(name="resnet", depth=18, width=0.25, head_bias_init=-5.0,
                   dtype="float32", num_classes=placeholder(int))
    c.optimizer = schema.optimizer_section("momentum", weight_decay=1e-4)
    c.schedule = schema.schedule_section("cosine", base_lr=0.1, warmup_steps=100)

    # The same resize as training, so objects have the same size in pixels.
    # fasteval labels already hold the monitored classes and their ancestors.
    eval_pp = ("decode|resize(72)|central_crop(64)|value_range(-1, 1)"
               "|multi_hot(fill_ancestors=False)|keep('image', 'labels')")
    c.evals.fasteval = dict(type="map_at_k", data=dict(split="fasteval"), pp=eval_pp,
                            every_steps=500, k=100, weights="uniform", baseline=True)
    c.evals.fasteval_loss = dict(type="loss", data=dict(split="fasteval"), pp=eval_pp,
                                 every_steps=500)
    c.eval_batch_size = 256
    if size == "tiny":
        _tiny(c)
    elif size not in (None, "demo"):
        raise ValueError(f"configs/demo.py:{size}: use demo or tiny.")
    return c


def _tiny(c: ml_collections.ConfigDict) -> None:
    c.input.data.name = "synthetic_jft/tiny"
    c.input.image_shape = (32, 32, 3)
    c.input.pp = c.input.pp.replace("resize(72)|random_crop(64)", "resize(36)|random_crop(32)")
    for ev in c.evals.values():
        ev.pp = ev.pp.replace("resize(72)|central_crop(64)", "resize(36)|central_crop(32)")
    c.batch_size, c.eval_batch_size, c.total_steps = 16, 64, 8
    c.schedule.warmup_steps = 2
    c.ckpt_steps = 8
