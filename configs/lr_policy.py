"""The one learning-rate policy of the paper configs.

The paper trained asynchronously: N workers, each applying the gradient of its
own batch of b examples with rate lr (classification: 50 workers of 32;
detection: 9 workers of one image). Here a synchronous step averages the
gradient of the global batch B. One such step stands for one round of B / b
asynchronous updates, whose effects add up, so it takes the rate
lr * B / b: the linear scaling rule (Goyal et al. 2017), with b the paper's
batch per update. Schedules are matched in examples seen, not in updates.
Where the factor B / b is large (above 8), the rule needs a gradual warmup:
linear from 0 over Goyal et al.'s 5 ImageNet epochs of examples, or over 5/90 of
the run where the run is shorter than their 90 epochs (their warmup's share).

Every paper config takes its rate from `synchronous`, and its docstring says
the paper's rate, the factor and the result. Where the paper trained
synchronously at this batch (DeepLab, batch 6) the factor is 1. Where the
paper gives no rate (pose), the config says so and gives its own.
"""

from __future__ import annotations

import math

WARMUP_EXAMPLES = 5 * 1_281_167  # Goyal et al.'s 5 epochs of ImageNet
LARGE_FACTOR = 8  # above it the rule needs its warmup
WARMUP_SHARE = 5 / 90  # Goyal et al.'s warmup, as a share of their run


def synchronous(paper_lr: float, paper_batch_per_update: int, batch: int,
                run_examples: int | None = None) -> tuple[float, int]:
    """(learning rate, warmup examples) of a synchronous step of `batch` examples
    standing for the paper's updates of `paper_batch_per_update` examples at
    `paper_lr`. `run_examples`: the run's length, where it is known; a run shorter
    than 90 ImageNet epochs warms up over 5/90 of itself."""
    if paper_batch_per_update <= 0 or batch <= 0:
        raise ValueError(f"batches must be positive, not {paper_batch_per_update} "
                         f"and {batch}.")
    factor = batch / paper_batch_per_update
    if factor <= LARGE_FACTOR:
        return paper_lr * factor, 0
    warmup = WARMUP_EXAMPLES
    if run_examples is not None:
        warmup = min(warmup, math.ceil(run_examples * WARMUP_SHARE))
    return paper_lr * factor, warmup
