"""Names of the keys the pipeline itself adds to examples and batches.

TensorFlow-free, so model-side code (tasks, evaluators, the train step) can
name them without importing tf.data. Keys starting with `_` survive `keep`.
"""

MASK_KEY = "_mask"  # eval batches: True for real examples, False for padding
INDEX_KEY = "_index"  # eval batches: position of the example in its split
SEED_KEY = "_seed"  # per-example stateless seed, consumed by random pp ops
# The class id of label-map pixels without a label (VOC's object borders,
# padding): kept by every pp op, skipped by losses and metrics.
IGNORE_LABEL = 255
