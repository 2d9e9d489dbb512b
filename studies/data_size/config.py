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
    """size: demo (default), or tiny (synthetic_jft/tiny at 32 px, a quarter epoch:
    the tests' size, configs/demo.py's tiny)."""
    tiny = size == "tiny"
    c = demo.get_config(size)
    c.total_epochs = 0.25 if tiny else 4.0  # epoch-matched; the study sets total_steps too
    # Warmup as a share of the run, so a short run is not half warmup.
    c.schedule.warmup_steps = 0
    c.schedule.warmup_fraction = WARMUP
    c.ckpt_steps = 250
    c.keep_ckpts = 1
    resamples = 20 if tiny else RESAMPLES
    c.evals.fasteval.every_steps = EVERY
    c.evals.fasteval.baseline = False
    c.evals.fasteval.bootstrap = resamples
    del c.evals["fasteval_loss"]
    crop = "resize(36)|central_crop(32)" if tiny else "resize(72)|central_crop(64)"
    digits = f"sklearn_digits/{'32px' if tiny else '64px'}"
    # tiny: slices, as configs/transfer/digits.py's tiny (the tests' runs).
    features = dict(data_train=dict(name=digits, split="train[:400]" if tiny else "train"),
                    data_test=dict(name=digits, split="test[:200]" if tiny else "test"),
                    pp=f"decode|{crop}|value_range(-1, 1)|keep('image', 'label')",
                    every_steps=EVERY, bootstrap=resamples)
    c.evals.digits_probe = dict(type="linear_probe", l2=1e-3, **features)
    c.evals.digits_fewshot = dict(type="fewshot", shots=(10,), seeds=3, **features)
    return c
