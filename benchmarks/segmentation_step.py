"""Train-step images/second of DeepLab-ASPP-L beside classification, same run, same size.

Three framework train steps on the same random 513 px batch, SGD + momentum:

- `cls os32`: the classification ResNet (1000-way softmax), as pre-trained;
- `cls os8`: the same with its last two stages atrous (output stride 8), i.e.
  DeepLab's body with a classification head;
- `deeplab os8`: DeepLab-ASPP-L (four atrous 3x3 branches, summed, upsampled
  to 513 px, per-pixel softmax ignoring label 255).

`deeplab / cls os8` is what the dense head costs (ASPP, upsampling, the
per-pixel loss); `deeplab / cls os32` is the whole price of dense prediction
at output stride 8.

    python -m benchmarks.segmentation_step --depth 101 --batch_size 2 --steps 2  # CPU
    python -m benchmarks.segmentation_step --batch_size 16 --steps 10 \
        --dtype bfloat16 --mfu                                                 # GPU
"""

from __future__ import annotations

import json

import jax
import numpy as np
import optax

from benchmarks.step_compare import (
    parse_flags,
    peak_flops,
    selected,
    slowdowns,
    time_jobs,
)
from benchmarks.train_step_throughput import DTYPES
from big_vision_like import mesh as mesh_lib
from big_vision_like.models.deeplab import DeepLab
from big_vision_like.models.resnet import ResNet
from big_vision_like.tasks.classification import ClassificationTask
from big_vision_like.tasks.segmentation import IGNORE_LABEL, SegmentationTask


def main() -> None:
    args = parse_flags(__doc__.splitlines()[0], image_size=513, batch_size=2,
                       num_classes=21)
    dtype = DTYPES[args.dtype]
    mesh = mesh_lib.make_mesh(data=-1, model=1)
    rng = np.random.default_rng(0)
    b, s, c = args.batch_size, args.image_size, args.num_classes
    image = rng.normal(size=(b, s, s, 3)).astype(np.float32)
    labels = rng.integers(0, c, (b, s, s, 1))
    labels[rng.random(labels.shape) < 0.05] = IGNORE_LABEL
    tx = optax.sgd(1e-3, momentum=0.9)

    jobs = {
        "cls os32": (ClassificationTask(ResNet(depth=args.depth, num_classes=1000,
                                               dtype=dtype), 1000, "softmax_xent"),
                     {"image": image, "labels": np.eye(1000, dtype=np.float32)[
                         rng.integers(0, 1000, b)]}),
        "deeplab os8": (SegmentationTask(DeepLab(num_classes=c, depth=args.depth,
                                                 output_stride=8, dtype=dtype), c),
                        {"image": image, "segmentation": labels.astype(np.uint8)}),
    }
    jobs["cls os8"] = (ClassificationTask(ResNet(depth=args.depth, num_classes=1000,
                                                 output_stride=8, dtype=dtype), 1000,
                                          "softmax_xent"), jobs["cls os32"][1])
    results = {"device": jax.devices()[0].device_kind, "devices": jax.device_count(),
               "dtype": args.dtype, "depth": args.depth, "image_size": s, "batch_size": b,
               "steps": args.steps}
    print(f"device: {results['device']} x{results['devices']}, {args.dtype}, ResNet-"
          f"{args.depth}, {s} px, global batch {b}, {args.steps} timed steps")
    order = selected(("cls os32", "cls os8", "deeplab os8"), args.runs)
    results["runs"] = time_jobs({k: jobs[k] for k in order}, tx, (s, s, 3), mesh,
                                args.steps, b, peak_flops(args, dtype))
    # The old key names ("step_time_deeplab_over_cls_os8") stay readable.
    for key, value in slowdowns(results["runs"], "deeplab os8", ("cls os8", "cls os32")
                                ).items():
        results[key.replace("deeplab_os8", "deeplab")] = value
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
