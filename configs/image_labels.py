"""Pre-training as configs/demo.py on your own multi-label images instead of synthetic_jft:

    root/train/labels.csv     image,labels  with labels separated by '|'
    root/train/*.jpg          (or labels.jsonl: {"image": "a.jpg", "labels": ["cat", "animal"]})
    root/val/labels.csv ...   a held-out split, for the mAP@100 and loss evaluators
    root/classes.txt          optional class list; root/hierarchy.txt (child parent) optional

    python -m big_vision_like.train --config configs/image_labels.py:/data/photos \
        --workdir workdirs/photos --config.input.data.data_dir=data/tfds

The dataset is `image_labels:<root>` (input_pipeline/sources/local_formats); append
`?strict=true` to the name to stop on a missing or undecodable image instead of
skipping it. Its labels already include the hierarchy's ancestors, and the
hierarchy is in its metadata, so `input.hierarchy = "dataset"` works as for
synthetic_jft. `python -m input_pipeline.prepare --dataset image_labels:<root>`
prints the label statistics first. The held-out split is `val`; another name:
--config.evals.fasteval.data.split=... (and evals.fasteval_loss).
"""

import ml_collections

from configs import demo

DEFAULT_ROOT = "data/image_labels"


def get_config(root: str | None = None) -> ml_collections.ConfigDict:
    c = demo.get_config()
    c.input.data.name = f"image_labels:{root or DEFAULT_ROOT}"
    for ev in c.evals.values():
        ev.data.split = "val"
    return c
