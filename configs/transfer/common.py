"""What every transfer config shares: the demo's ResNet with a fresh softmax head,
one schedule for training from scratch, from frozen features and fine-tuning.

A config trains from scratch unless `init_from.checkpoint` is given; with
`frozen='^(conv1|conv[2-5])'` only the head trains (the body's batch norms
stay in inference mode). Evaluators: `test` (top-1/top-5 on the test split),
`fewshot` and `probe` (linear probe) on the pre-logit features, all at the end.
"""

from __future__ import annotations

import dataclasses

import ml_collections

from big_vision_like.config import schema
from configs import demo

FROZEN_BODY = "^(conv1|conv[2-5])"  # every stage: only the head trains


@dataclasses.dataclass(frozen=True)
class Target:
    """One transfer target: its data and how an example becomes a class id."""

    data: str  # TFDS name
    train_split: str
    test_split: str
    image_size: int
    num_classes: int | None  # None: the dataset's (a user's folder, found when read)
    label_pp: str  # ops after decoding and augmentation that set an integer 'label'
    augment: str  # train-only ops between decode and value_range
    eval_resize: str = ""  # eval-only ops between decode and value_range
    total_steps: int = 300
    batch_size: int = 64


def transfer_config(t: Target) -> ml_collections.ConfigDict:
    c = schema.base()
    # Only the end state is saved: runs are short.
    c.update(batch_size=t.batch_size, total_steps=t.total_steps, log_steps=25,
                   log_every_seconds=10.0, ckpt_steps=t.total_steps, keep_ckpts=1)

    ops = lambda *parts: "|".join(p for p in parts if p)
    # The class count is the target's, not the dataset's (object counts of
    # synthetic_jft are not its classes).
    onehot = (f"onehot({t.num_classes}, key='label')" if t.num_classes
              else "onehot(key='label')")
    c.input.data.update(name=t.data, split=t.train_split)
    c.input.image_shape = (t.image_size, t.image_size, 3)
    c.input.pp = ops("decode", t.augment, "value_range(-1, 1)", t.label_pp, onehot,
                     "keep('image', 'labels')")
    c.input.hierarchy = "none"  # single-label targets
    c.input.shuffle_buffer = 2_000
    c.input.skip_corrupt = True
    c.input.prefetch = 2

    # The pre-trained demo body; the head is new (init_from.skip) and softmax.
    c.model = demo.get_config().model
    c.model.head_bias_init = 0.0
    c.model.num_classes = t.num_classes
    c.loss = "softmax_xent"
    c.optimizer = schema.optimizer_section("momentum", momentum=0.9, weight_decay=1e-4)
    c.schedule = schema.schedule_section("cosine", base_lr=0.05,
                                         warmup_steps=max(1, t.total_steps // 10))
    c.init_from.skip = "^head/"

    eval_pp = ops("decode", t.eval_resize, "value_range(-1, 1)", t.label_pp)
    end = 10 ** 9  # evaluators also run once at the end
    c.evals.test = dict(type="classification", data=dict(split=t.test_split), every_steps=end,
                        pp=ops(eval_pp, onehot, "keep('image', 'labels')"))
    features = dict(data_train=dict(split=t.train_split), data_test=dict(split=t.test_split),
                    pp=ops(eval_pp, "keep('image', 'label')"), every_steps=end)
    c.evals.fewshot = dict(type="fewshot", shots=(1, 5, 10, 25), seeds=3, **features)
    c.evals.probe = dict(type="linear_probe", l2=1e-3, **features)
    c.eval_batch_size = 256
    return c
