"""The paper's JFT-300M recipe: ResNet-101, 18,291 sigmoid outputs, RMSProp.

Paper (Sec. 4.1): images resized to 340x340, random 299 crops, random flips,
pixels in [-1, 1]; per-label logistic loss with the hierarchy's ancestors
filled in; weight decay 1e-4; batch norm after every convolution; RMSProp
with momentum 0.9; batch 32; learning rate 1e-3 decayed by 0.9 every 3M
steps; 90M iterations (about 10 epochs); asynchronous SGD on 50 GPUs.

Translation to synchronous training:
* The 50 workers' batches of 32 become one global batch of 50 x 32 = 1600.
* The paper's steps are worker iterations of 32 examples each, so its
  schedule is kept in examples seen: the decay comes every 3M x 32 = 96M
  examples and training ends after 90M x 32 = 2.88B examples (9.6 epochs of
  300M), i.e. every 60,000 and after 1.8M steps of 1600.
* The learning rate stays 1e-3 per update, as in the paper. A synchronous
  step averages 50x more examples than one asynchronous update, so there are
  50x fewer updates; scaling the rate with the batch (with warmup) is the
  usual remedy and a field away: --config.schedule.base_lr=... and
  --config.schedule.warmup_examples=....
* The head is split over the mesh's `model` axis in place of the paper's
  17 parameter servers: --config.mesh.model=8 puts 1/8 of it on each device.

The dataset is a TFDS dataset named `jft300m` with `image` and `labels`
(Sequence(ClassLabel(18291))) that you prepare; its hierarchy comes from the
dataset metadata, or from a file given in `input.hierarchy`.
"""

import ml_collections
from ml_collections.config_dict import placeholder

from configs.common import set_mesh_and_sharding
from input_pipeline.recipes import paper_eval, paper_train

PAPER_BATCH_PER_WORKER, PAPER_WORKERS = 32, 50


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.batch_size = PAPER_BATCH_PER_WORKER * PAPER_WORKERS
    c.total_steps = placeholder(int)
    c.total_epochs = placeholder(float)
    c.total_examples = 90_000_000 * PAPER_BATCH_PER_WORKER
    c.log_steps = 100
    c.log_every_seconds = 30.0
    c.ckpt_steps = 2000
    c.keep_ckpts = 3
    c.keep_ckpt_steps = 100_000

    set_mesh_and_sharding(c)

    c.input = ml_collections.ConfigDict()
    c.input.data = dict(name="jft300m", split="train", data_dir=placeholder(str))
    c.input.image_shape = (299, 299, 3)
    c.input.pp = paper_train() + "|multi_hot(18291)|keep('image', 'labels')"
    c.input.hierarchy = "dataset"  # or a child-parent file / Open Images JSON
    c.input.shuffle_buffer = 250_000
    c.input.skip_corrupt = True
    c.input.prefetch = 2

    c.model = dict(name="resnet", depth=101, width=1.0, num_classes=18_291,
                   head_bias_init=-10.0, dtype="bfloat16")  # sigmoid prior ~ 1/18291
    c.loss = "sigmoid_xent"
    c.optimizer = dict(name="rmsprop", decay=0.9, momentum=0.9, eps=1.0, weight_decay=1e-4)
    c.schedule = dict(name="staircase", base_lr=1e-3, decay_factor=0.9,
                      decay_every_examples=3_000_000 * PAPER_BATCH_PER_WORKER)

    c.evals = ml_collections.ConfigDict()
    c.evals.fasteval = dict(
        type="loss", data=dict(name="fasteval14k", split="test", data_dir=placeholder(str)),
        pp=paper_eval() + "|multi_hot(18291, fill_ancestors=False)|keep('image', 'labels')",
        every_steps=10_000)
    c.eval_batch_size = 1024
    c.init_from = dict(checkpoint=placeholder(str), skip=placeholder(str))
    return c
