"""The paper's ImageNet baseline: ResNet-101, softmax, SGD with momentum.

Paper (Sec. 4.1): momentum 0.9, initial learning rate 5e-2, batch 32 per
worker on 50 asynchronous workers, learning rate divided by 10 every 30
epochs (~1.2M steps), 5M steps in all. Synchronous translation as in
jft300m_resnet101.py: global batch 50 x 32 = 1600; the schedule in epochs
(decay every 30, counted from the end of the warmup) and examples (5M x 32 =
160M, ~125 epochs); the learning rate by configs/lr_policy.py, 5e-2 x 50 =
2.5 after a 5-epoch warmup. That is 4x Goyal et al.'s rate at this batch (0.1
per 256 examples): the paper's per-example rate was that much higher. If a
run diverges, --config.schedule.base_lr=0.625 is Goyal et al.'s.

Also the 'ImageNet' initialisation for 'ImageNet+300M': point the JFT
config's init_from.checkpoint at a step folder of this run, with
init_from.skip='^head/'.
"""

import ml_collections
from ml_collections.config_dict import placeholder

from big_vision_like.config import schema
from configs import lr_policy
from input_pipeline.pp.recipes import paper_eval, paper_train

PAPER_BATCH_PER_WORKER = 32


def get_config() -> ml_collections.ConfigDict:
    c = schema.base()
    c.seed = 0
    c.batch_size = PAPER_BATCH_PER_WORKER * 50
    c.total_steps = placeholder(int)
    c.total_epochs = placeholder(float)
    c.total_examples = 5_000_000 * 32
    c.log_steps = 100
    c.log_every_seconds = 30.0
    c.ckpt_steps = 2000
    c.keep_ckpts = 3
    c.keep_ckpt_every_steps = placeholder(int)  # also keep every N-th step
    c.keep_ckpt_steps = placeholder(tuple)  # also keep these (or in epochs, examples)
    c.keep_ckpt_epochs = placeholder(tuple)
    c.keep_ckpt_examples = placeholder(tuple)


    c.input.data.update(name="imagenet2012", split="train")
    c.input.image_shape = (299, 299, 3)
    c.input.pp = paper_train() + "|onehot(1000, key='label')|keep('image', 'labels')"
    c.input.hierarchy = "none"
    c.input.shuffle_buffer = 250_000
    c.input.skip_corrupt = True
    c.input.prefetch = 2

    c.model = dict(name="resnet", depth=101, width=1.0, num_classes=1000,
                   head_bias_init=0.0, dtype="bfloat16")
    c.loss = "softmax_xent"
    # grad_clip_norm unset: no clipping, as the paper.
    c.optimizer = schema.optimizer_section("momentum", momentum=0.9, weight_decay=1e-4)
    lr, warmup = lr_policy.synchronous(5e-2, PAPER_BATCH_PER_WORKER, c.batch_size)
    c.schedule = schema.schedule_section("staircase", base_lr=lr, decay_factor=0.1,
                                         warmup_examples=warmup, decay_every_epochs=30)

    # Top-1 / top-5 accuracy (and loss) on the validation set, as the paper reports.
    c.evals.val = dict(type="classification", data=dict(split="validation"),
                       pp=paper_eval() + "|onehot(1000, key='label')|keep('image', 'labels')",
                       every_steps=5000)
    c.eval_batch_size = 1024
    return c
