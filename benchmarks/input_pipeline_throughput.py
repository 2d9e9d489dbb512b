"""Input pipeline images/second per core, paper recipe, 340 px JPEGs.

Beside it, in the same run, a plain PIL loop doing the same work
(decode, resize 340x340, random crop 299, random flip, scale to [-1, 1])
on the same JPEG bytes, one core. The ratio is what the tf.data pipeline
gives per core over the obvious hand-written loop.

    python -m benchmarks.input_pipeline_throughput [--images 1024] [--data_dir DIR]
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from input_pipeline.pp.base import PPContext
from input_pipeline.pp.builder import build_preprocess
from input_pipeline.pp.recipes import paper_train
from input_pipeline.pp.registry import default_registry
from input_pipeline.sources.core import DataSource
from input_pipeline.sources.synthetic_jft.builder import SyntheticJft, SyntheticJftConfig
from input_pipeline.stream import batches


def bench_source(images: int, data_dir: str) -> DataSource:
    config = SyntheticJftConfig(name=f"bench340_{images}", image_size=340, num_leaves=100,
                                train_examples=images, fasteval_examples=0, test_examples=0)
    builder = SyntheticJft(config=config, data_dir=data_dir)
    builder.download_and_prepare()
    return DataSource(config.name, builder)


def one_thread(ds: tf.data.Dataset) -> tf.data.Dataset:
    """`ds` on one private thread, no autotuning: what one core gives."""
    options = tf.data.Options()
    options.threading.private_threadpool_size = 1
    options.threading.max_intra_op_parallelism = 1
    options.autotune.enabled = False
    return ds.with_options(options)


def pipeline_rate(source: DataSource, images: int, batch: int = 32) -> float:
    """Images/s of the training pipeline restricted to one thread."""
    pp = build_preprocess(paper_train() + "|keep('image')", default_registry(), PPContext())
    ds = batches.train_dataset(source, "train", pp, batch, seed=0,
                               shard=batches.HostShard(0, 1), shuffle_buffer=256)
    it = iter(one_thread(ds))
    for _ in range(4):  # warm up: fill buffers, trace functions
        next(it)
    n = max(1, images // batch)
    start = time.perf_counter()
    for _ in range(n):
        next(it)["image"].numpy()
    return n * batch / (time.perf_counter() - start)


def pil_rate(jpegs: list[bytes], seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    for data in jpegs:
        img = Image.open(io.BytesIO(data)).convert("RGB").resize((340, 340), Image.BILINEAR)
        top, left = rng.integers(0, 340 - 299 + 1, 2)
        arr = np.asarray(img)[top:top + 299, left:left + 299]
        if rng.random() < 0.5:
            arr = arr[:, ::-1]
        arr = arr.astype(np.float32) * (2 / 255) - 1
    return len(jpegs) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--data_dir", default=None)
    args = parser.parse_args()
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="bench_tfds_")
    source = bench_source(args.images, data_dir)
    jpegs = [ex["image"] for ex in tfds.as_numpy(source.read("train"))]
    pil = pil_rate(jpegs)  # interleave the two so machine noise hits both
    pipe = pipeline_rate(source, args.images)
    pil = max(pil, pil_rate(jpegs, seed=1))
    pipe = max(pipe, pipeline_rate(source, args.images))
    print(f"{'method':<40} {'img/s/core':>10}")
    print(f"{'tf.data pipeline (paper recipe)':<40} {pipe:>10.1f}")
    print(f"{'plain PIL loop':<40} {pil:>10.1f}")
    print(f"ratio pipeline / PIL: {pipe / pil:.2f}  ({len(jpegs)} JPEGs, 340x340)")


if __name__ == "__main__":
    main()
