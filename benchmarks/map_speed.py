"""mAP@100 over FastEval14k's shape (14,000 images x 6,000 classes), timed.

Beside it, in the same run, sklearn's `average_precision_score` in a
per-class loop (full AP), the obvious way to compute it, and the ratio.

    python -m benchmarks.map_speed [--images 14000] [--classes 6000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics import average_precision_score

from evaluators.map_at_k import mean_average_precision


def best_of(fn, repeats: int) -> tuple[float, float]:
    times, value = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return min(times), value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=14_000)
    parser.add_argument("--classes", type=int, default=6_000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    labels = rng.random((args.images, args.classes)) < 37 / args.classes  # ~37 per image
    scores = (rng.normal(size=labels.shape) + 2.0 * labels).astype(np.float32)
    mean_average_precision(scores, labels, k=100)  # compile
    mean_average_precision(scores, labels, k=None)
    t100, map100 = best_of(lambda: mean_average_precision(scores, labels, k=100), 3)
    tall, mapall = best_of(lambda: mean_average_precision(scores, labels, k=None), 2)

    def sklearn_loop():
        has = np.flatnonzero(labels.any(0))
        return float(np.mean([average_precision_score(labels[:, c], scores[:, c])
                              for c in has]))
    tsk, mapsk = best_of(sklearn_loop, 1)
    print(f"{args.images} images x {args.classes} classes")
    print(f"{'method':<38} {'seconds':>8} {'mAP':>8}")
    print(f"{'mAP@100 (this project)':<38} {t100:>8.3f} {map100:>8.4f}")
    print(f"{'full mAP (this project, k=None)':<38} {tall:>8.3f} {mapall:>8.4f}")
    print(f"{'full mAP, sklearn per-class loop':<38} {tsk:>8.3f} {mapsk:>8.4f}")
    print(f"ratio sklearn loop / mAP@100: {tsk / t100:.1f}x; "
          f"sklearn loop / full mAP: {tsk / tall:.1f}x")


if __name__ == "__main__":
    main()
