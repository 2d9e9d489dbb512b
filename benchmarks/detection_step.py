"""Train-step images/second of Faster R-CNN beside classification, same run, same size.

Two framework train steps on the same random batch, SGD + momentum:

- `cls`: the classification ResNet (1000-way softmax) on the padded input;
- `faster_rcnn`: the paper's detector on it (conv1-4 shared, RPN minibatch 64,
  300 proposals, box-classifier minibatch 256 through conv5), with 1-20
  ground-truth boxes per image.

`faster_rcnn / cls` is what detection costs per image: the RPN, proposal NMS,
crop-and-resize and conv5 on 256 crops (7x7) instead of one 1/32 map.

    python -m benchmarks.detection_step --depth 101 --image_size 1024 --batch_size 1 \
        --steps 2                                                        # CPU
    python -m benchmarks.detection_step --batch_size 8 --steps 10 --dtype bfloat16 --mfu  # GPU
"""

from __future__ import annotations

import json

import jax
import numpy as np
import optax

from benchmarks.step_compare import parse_flags, peak_flops, slowdowns, time_jobs
from benchmarks.train_step_throughput import DTYPES
from big_vision_like import mesh as mesh_lib
from big_vision_like.models.faster_rcnn import FasterRCNN
from big_vision_like.models.resnet import ResNet
from big_vision_like.tasks.classification import ClassificationTask
from big_vision_like.tasks.detection import DetectionTask


def random_boxes(rng: np.random.Generator, b: int, g: int, c: int) -> dict[str, np.ndarray]:
    """Padded ground truth: 1..g boxes per image, normalised, classes < c."""
    yx = rng.uniform(0, 0.7, (b, g, 2))
    size = rng.uniform(0.05, 0.3, (b, g, 2))
    count = rng.integers(1, g + 1, b)
    return {"boxes": np.concatenate([yx, yx + size], -1).astype(np.float32),
            "classes": rng.integers(0, c, (b, g)).astype(np.int32),
            "box_valid": np.arange(g)[None] < count[:, None]}


def main() -> None:
    args = parse_flags(__doc__.splitlines()[0], image_size=1024, batch_size=1,
                       num_classes=80)
    dtype = DTYPES[args.dtype]
    mesh = mesh_lib.make_mesh(data=-1, model=1)
    rng = np.random.default_rng(0)
    b, s, c = args.batch_size, args.image_size, args.num_classes
    image = rng.normal(size=(b, s, s, 3)).astype(np.float32)
    tx = optax.sgd(1e-3, momentum=0.9)
    jobs = {
        "cls": (ClassificationTask(ResNet(depth=args.depth, num_classes=1000, dtype=dtype),
                                   1000, "softmax_xent"),
                {"image": image,
                 "labels": np.eye(1000, dtype=np.float32)[rng.integers(0, 1000, b)]}),
        "faster_rcnn": (DetectionTask(FasterRCNN(depth=args.depth, num_classes=c,
                                                 dtype=dtype)),
                        {"image": image, "image_hw": np.full((b, 2), s, np.int32),
                         **random_boxes(rng, b, 20, c)}),
    }
    results = {"device": jax.devices()[0].device_kind, "devices": jax.device_count(),
               "dtype": args.dtype, "depth": args.depth, "image_size": s, "batch_size": b,
               "steps": args.steps}
    print(f"device: {results['device']} x{results['devices']}, {args.dtype}, ResNet-"
          f"{args.depth}, {s} px, global batch {b}, {args.steps} timed steps")
    results["runs"] = time_jobs(jobs, tx, (s, s, 3), mesh, args.steps, b,
                                peak_flops(args, dtype))
    results.update(slowdowns(results["runs"], "faster_rcnn", ("cls",)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
