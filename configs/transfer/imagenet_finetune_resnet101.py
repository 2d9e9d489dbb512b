"""Section 5.1: fine-tune the JFT-300M ResNet-101 on ImageNet (or any TFDS
single-label classification dataset).

Paper: the ImageNet setup of Sec. 4.1 (momentum 0.9, batch 32 per worker on
50 asynchronous workers, learning rate divided by 10 every 30 epochs) with
the initial learning rate lowered to 1e-3, initialised from the JFT-300M
checkpoint trained for 36M iterations, fine-tuned for 4M iterations; new
1000-way softmax head; single-crop top-1/top-5 on `validation`.

Synchronous translation, as in ../imagenet_resnet101.py: global batch
50 x 32 = 1600, the length in examples (4M x 32 = 128M, ~100 epochs of
ImageNet, i.e. 80,000 steps of 1600), the decay every 30 epochs; the learning
rate by configs/lr_policy.py, 1e-3 x 50 = 0.05 after a 5-epoch warmup.

    python -m big_vision_like.train --config configs/transfer/imagenet_finetune_resnet101.py \
        --workdir workdirs/ft --config.init_from.checkpoint=<jft workdir>/checkpoints/720000

Every variable of the checkpoint is loaded (batch-norm statistics
included) except the head ('^head/' stays fresh: 1000 classes, not 18,291).
Another dataset: --config.input.data.name=<tfds name> (and its splits via
input.data.split / evals.val.data.split); the head takes the dataset's
number of classes. Frozen features: --config.frozen='^(conv1|conv[2-5])'
trains the head alone on conv5's pooled features.
"""

import ml_collections
from ml_collections.config_dict import placeholder

from configs import imagenet_resnet101, lr_policy

PAPER_BATCH_PER_WORKER = 32


def get_config() -> ml_collections.ConfigDict:
    c = imagenet_resnet101.get_config()
    c.total_examples = 4_000_000 * PAPER_BATCH_PER_WORKER
    c.schedule.base_lr, c.schedule.warmup_examples = lr_policy.synchronous(
        1e-3, PAPER_BATCH_PER_WORKER, c.batch_size)
    # The head takes the dataset's number of classes (its metadata); the
    # one-hot op too.
    c.model.num_classes = placeholder(int)
    c.input.pp = c.input.pp.replace("onehot(1000, key='label')", "onehot(key='label')")
    c.evals.val.pp = c.evals.val.pp.replace("onehot(1000, key='label')",
                                            "onehot(key='label')")
    c.init_from.skip = "^head/"
    return c
