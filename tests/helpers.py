"""Configs and paths the trainer tests share."""

from configs import demo


def tiny_config(data_dir, **overrides):
    """configs/demo.py shrunk to synthetic_jft/tiny: 8 steps of 16 at 32 px."""
    c = demo.get_config()
    c.input.data.name = "synthetic_jft/tiny"
    c.input.data.data_dir = data_dir
    c.input.image_shape = (32, 32, 3)
    c.input.pp = ("decode|resize(36)|random_crop(32)|flip_lr|value_range(-1, 1)"
                  "|multi_hot|keep('image', 'labels')")
    c.input.shuffle_buffer = 100
    c.batch_size = 16
    c.total_steps = 8
    c.ckpt_steps = 4
    c.log_steps = 1
    c.schedule = dict(name="cosine", base_lr=0.05, warmup_steps=2)
    for ev in c.evals.values():
        ev.pp = ("decode|resize(36)|central_crop(32)|value_range(-1, 1)"
                 "|multi_hot(fill_ancestors=False)|keep('image', 'labels')")
        ev.every_steps = 4
    c.eval_batch_size = 64
    for k, v in overrides.items():
        c[k] = v
    return c


def data_dir_of(builder) -> str:
    return builder.data_dir.split("/synthetic_jft")[0]
