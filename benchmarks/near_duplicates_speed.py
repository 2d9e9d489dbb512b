"""Near-duplicate search speed: pairs compared per second of the blocked, device-sharded
top-k (tools/topk_search.py) against scikit-learn's brute-force cosine
`NearestNeighbors.kneighbors`, on the same embeddings in the same run.

    python -m benchmarks.near_duplicates_speed [--train 20000] [--eval 2000] [--dim 256]
        [--k 5] [--out benchmarks/results/cpu_near_duplicates.json]
"""

from __future__ import annotations

import argparse
import json
import platform

import jax
import numpy as np
from sklearn.neighbors import NearestNeighbors

from benchmarks.map_speed import best_of
from big_vision_like.tools.topk_search import blocked_topk, l2_normalise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=20_000)
    parser.add_argument("--eval", type=int, default=2_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--block_size", type=int, default=2048)
    parser.add_argument("--blocks_per_device", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    train = l2_normalise(rng.normal(size=(args.train, args.dim)))
    queries = l2_normalise(rng.normal(size=(args.eval, args.dim)))

    def ours():
        return blocked_topk(queries, train, args.k, block_size=args.block_size,
                            blocks_per_device=args.blocks_per_device)

    ours()  # compile
    t_ours, (sims, index) = best_of(ours, args.repeats)
    nn = NearestNeighbors(n_neighbors=args.k, metric="cosine", algorithm="brute").fit(train)
    t_sk, (dist, sk_index) = best_of(lambda: nn.kneighbors(queries), args.repeats)
    pairs = args.train * args.eval
    agree = float(np.mean(np.sort(index, 1) == np.sort(sk_index, 1)))
    result = {
        "train": args.train, "eval": args.eval, "dim": args.dim, "k": args.k,
        "devices": jax.device_count(), "platform": jax.devices()[0].platform,
        "machine": platform.processor() or platform.machine(),
        "block_size": args.block_size, "blocks_per_device": args.blocks_per_device,
        "seconds_blocked": t_ours, "seconds_sklearn": t_sk,
        "pairs_per_second_blocked": pairs / t_ours, "pairs_per_second_sklearn": pairs / t_sk,
        "speedup_blocked_over_sklearn": t_sk / t_ours,
        "neighbour_agreement": agree,
        "max_similarity_difference": float(np.abs(np.sort(1 - dist, 1)
                                                  - np.sort(sims, 1)).max()),
    }
    print(f"{args.train} train x {args.eval} eval x {args.dim}-d, top-{args.k}, "
          f"{result['devices']} {result['platform']} device(s)")
    print(f"{'method':<44} {'seconds':>8} {'pairs/s':>12}")
    print(f"{'blocked sharded top-k (this project)':<44} {t_ours:>8.3f} {pairs / t_ours:>12.3e}")
    print(f"{'sklearn NearestNeighbors(cosine, brute)':<44} {t_sk:>8.3f} {pairs / t_sk:>12.3e}")
    print(f"ratio (sklearn seconds / blocked seconds): {t_sk / t_ours:.2f}x; "
          f"same neighbours: {agree:.4f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
