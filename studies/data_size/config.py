"""The demo's pre-training as one point of the data-size study (Section 4, Figure 4).

The paper trained every random subset of JFT-300M (10M/30M/100M/300M) with the
same recipe and read each at its 4th epoch; here every subset of
synthetic_jft/demo trains 4 epochs of itself (steps scale with its size; the
study's compute-matched regime sets --config.total_steps instead), with a
warmup of 5% of the run's steps, and is measured at the end on the clean
fasteval split (mAP@100) and by transfer on frozen features: a linear probe
and 10-shot classification on real handwritten digits (sklearn_digits, which
pre-training never saw), each with its 95% bootstrap interval over the
evaluation images.

    python -m big_vision_like.train --config studies/data_size/config.py \
        --workdir workdirs/size_0.25 --config.input.data.data_dir=data/tfds \
        --config.input.data.subset_fraction=0.25

`studies.data_size.run` runs the whole sweep and fits the curve.
"""

import ml_collections

from configs import demo

EVERY = 10**9  # evaluators run once, at the end
WARMUP = 0.05  # of each run's steps (the demo's 100 of 1,500 is 0.067)
RESAMPLES = 200  # bootstrap resamples of the evaluation images, per metric


def get_config(size: str | None = None) -> ml_collections.ConfigDict:
    """size: demo (default), or tiny (synthetic_jft/tiny at 32 px, 1 epoch: tests)."""
    c = demo.get_config()
    c.total_epochs = 4.0  # the epoch-matched regime; the study sets total_steps for the other
    # Warmup as a share of the run, so a short run is not half warmup.
    c.schedule.warmup_steps = 0
    c.schedule.warmup_fraction = WARMUP
    c.ckpt_steps = 250
    c.keep_ckpts = 1
    c.evals.fasteval.every_steps = EVERY
    c.evals.fasteval.baseline = False
    c.evals.fasteval.bootstrap = RESAMPLES
    del c.evals["fasteval_loss"]
    digits = "decode|resize(72)|central_crop(64)|value_range(-1, 1)|keep('image', 'label')"
    features = dict(data_train=dict(name="sklearn_digits/64px", split="train"),
                    data_test=dict(name="sklearn_digits/64px", split="test"),
                    pp=digits, every_steps=EVERY, bootstrap=RESAMPLES)
    c.evals.digits_probe = dict(type="linear_probe", l2=1e-3, **features)
    c.evals.digits_fewshot = dict(type="fewshot", shots=(10,), seeds=3, **features)
    if size == "tiny":
        _tiny(c)
    elif size not in (None, "demo"):
        raise ValueError(f"size {size!r}: use demo or tiny.")
    return c


def _tiny(c: ml_collections.ConfigDict) -> None:
    c.input.data.name = "synthetic_jft/tiny"
    c.input.image_shape = (32, 32, 3)
    c.input.pp = c.input.pp.replace("resize(72)|random_crop(64)", "resize(36)|random_crop(32)")
    c.batch_size, c.eval_batch_size, c.total_epochs = 16, 64, 0.25
    c.evals.fasteval.pp = c.evals.fasteval.pp.replace("resize(72)|central_crop(64)",
                                                      "resize(36)|central_crop(32)")
    c.evals.fasteval.bootstrap = 20
    for name in ("digits_probe", "digits_fewshot"):
        ev = c.evals[name]
        ev.data_train.name = ev.data_test.name = "sklearn_digits/32px"
        ev.pp = ev.pp.replace("resize(72)|central_crop(64)", "resize(36)|central_crop(32)")
        ev.bootstrap = 20
