"""TFDS builder `synthetic_jft`: an offline dataset with JFT-300M's difficulties.

Multi-label images of textured, coloured shapes whose classes form a 4-level
hierarchy; Zipf-distributed class frequencies; ~20% noisy and non-exhaustive
training labels (including look-alike confusions); a clean, densely labelled
`fasteval` split over a subset of the classes, in the manner of FastEval14k;
per-object masks, boxes and keypoints for transfer tasks.

    import input_pipeline.sources.synthetic_jft.builder  # registers it with TFDS
    builder = tfds.builder("synthetic_jft/demo", data_dir=...)
    builder.download_and_prepare()   # renders; nothing is downloaded

Custom sizes: pass `config=SyntheticJftConfig(name=..., ...)` to tfds.builder.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import multiprocessing
import os
import sys
from collections.abc import Iterator
from concurrent import futures

import numpy as np
import tensorflow_datasets as tfds

from input_pipeline.sources.synthetic_jft import render
from input_pipeline.sources.synthetic_jft import taxonomy as tax


@dataclasses.dataclass(eq=False)
class SyntheticJftConfig(tfds.core.BuilderConfig):
    """Size and difficulty of a synthetic_jft variant.

    Attributes:
      image_size: square image side in pixels.
      num_leaves: leaf classes (drawn on images); the hierarchy adds the
        shape+colour, shape and family classes above them.
      train_examples / fasteval_examples / test_examples: split sizes.
      noise_rate: fraction of training labels that name an object not in the
        image (confusions with siblings and look-alikes, and unrelated labels).
      missing_label_rate: chance that an object other than the first is left
        unlabelled in the training split (labels are not exhaustive).
      zipf_exponent: leaf frequency is proportional to rank**-zipf_exponent.
      mean_extra_objects: Poisson mean of objects beyond the first (max 3).
      monitor_fraction: fraction of the classes the fasteval split labels.
      seed: fixes the whole dataset.
    """

    image_size: int = 64
    num_leaves: int = 500
    train_examples: int = 50_000
    fasteval_examples: int = 2_000
    test_examples: int = 2_000
    noise_rate: float = 0.2
    missing_label_rate: float = 0.25
    zipf_exponent: float = 1.0
    mean_extra_objects: float = 0.7
    monitor_fraction: float = 1 / 3
    seed: int = 0

    def generation_params(self) -> render.GenerationParams:
        return render.GenerationParams(
            image_size=self.image_size, num_leaves=self.num_leaves,
            noise_rate=self.noise_rate, zipf_exponent=self.zipf_exponent,
            mean_extra_objects=self.mean_extra_objects,
            missing_label_rate=self.missing_label_rate, seed=self.seed)


def monitor_classes(taxonomy: tax.Taxonomy, fraction: float, seed: int) -> np.ndarray:
    """Class ids labelled in fasteval: a seeded subset, as FastEval14k's 6000."""
    n = max(1, round(fraction * taxonomy.num_classes))
    rng = np.random.default_rng([seed, 7])
    return np.sort(rng.choice(taxonomy.num_classes, size=n, replace=False))


def ancestors_closure(taxonomy: tax.Taxonomy) -> list[list[int]]:
    """Per class, itself and all its ancestors (the taxonomy is a tree)."""
    parent = {c: p for c, p in taxonomy.parents}
    out = []
    for c in range(taxonomy.num_classes):
        chain = [c]
        while chain[-1] in parent:
            chain.append(parent[chain[-1]])
        out.append(chain)
    return out


# Module-level state of worker processes (set once per process by _init).
_WORKER: dict = {}
_CHUNK = 64  # examples per task sent to a worker


def _init_worker(params: render.GenerationParams) -> None:
    _WORKER["params"] = params
    _WORKER["taxonomy"] = tax.build_taxonomy(params.num_leaves)


def _render_range(split: str, start: int, stop: int) -> list[dict]:
    return [render.render_example(_WORKER["params"], _WORKER["taxonomy"], split, i)
            for i in range(start, stop)]


@contextlib.contextmanager
def _main_hidden_from_workers() -> Iterator[None]:
    """Starts worker processes without re-running the caller's `__main__`.

    A spawned process imports the parent's main script before running a
    task. From a script without an `if __name__ == "__main__"` guard that
    import generates the dataset again and the workers die and restart
    forever; from standard input there is no file to import. The workers
    run functions of this module only, so they are told of no main module.
    """
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if k in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__dict__["__spec__"] = None
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


class SyntheticJft(tfds.core.GeneratorBasedBuilder):
    """synthetic_jft: procedurally rendered, JFT-shaped multi-label images."""

    name = "synthetic_jft"
    # The splits it can write, read without data by SourceKind.declared_splits.
    SPLITS = ("train", "fasteval", "test")
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}  # noqa: RUF012 (TFDS API)
    BUILDER_CONFIGS = [  # noqa: RUF012 (TFDS API)
        SyntheticJftConfig(name="tiny", description="32 px, 40 leaves; tests.",
                           image_size=32, num_leaves=40, train_examples=2_000,
                           fasteval_examples=500, test_examples=500),
        SyntheticJftConfig(name="demo", description="64 px, 500 leaves; the demo.",
                           image_size=64, num_leaves=500),
        # JFT's 18,291 classes count every level: leaves plus their ancestors.
        SyntheticJftConfig(name="jft", description="340 px, 18,291 classes, as JFT.",
                           image_size=340, num_leaves=tax.leaves_for_classes(18_291),
                           train_examples=300_000, fasteval_examples=14_000,
                           test_examples=14_000),
        SyntheticJftConfig(name="jft_smoke",
                           description="32 px, JFT's 18,291 classes, few images; smoke "
                           "runs of the JFT config.",
                           image_size=32, num_leaves=tax.leaves_for_classes(18_291),
                           train_examples=256, fasteval_examples=128, test_examples=128),
    ]
    DEFAULT_CONFIG_NAME = "demo"

    def _info(self) -> tfds.core.DatasetInfo:
        cfg: SyntheticJftConfig = self.builder_config
        taxonomy = tax.build_taxonomy(cfg.num_leaves)
        size = cfg.image_size
        metadata = tfds.core.MetadataDict(
            hierarchy=[list(p) for p in taxonomy.parents],
            class_names=list(taxonomy.names),
            leaf_classes=taxonomy.leaf_ids.tolist(),
            monitor_classes=monitor_classes(
                taxonomy, cfg.monitor_fraction, cfg.seed).tolist(),
            leaf_frequencies=render.leaf_frequencies(cfg.generation_params()).tolist(),
        )
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(size, size, 3),
                                             encoding_format="jpeg"),
                "image_id": np.int64,
                "labels": tfds.features.Sequence(
                    tfds.features.ClassLabel(num_classes=taxonomy.num_classes)),
                "objects": tfds.features.Sequence({
                    "label": tfds.features.ClassLabel(
                        num_classes=taxonomy.num_classes),
                    "bbox": tfds.features.BBoxFeature(),
                    "keypoints": tfds.features.Tensor(
                        shape=(render.NUM_KEYPOINTS, 3), dtype=np.float32),
                }),
                "segmentation": tfds.features.Image(shape=(size, size, 1),
                                                    encoding_format="png"),
            }),
            metadata=metadata,
            description=(
                "Training labels are noisy leaf ids (ancestors not filled in); "
                "fasteval and test labels are exact, with ancestors, and "
                "fasteval keeps only `metadata['monitor_classes']`. "
                "objects.label holds the true leaf of each visible object; "
                "segmentation holds object index + 1 (0: background)."),
        )

    def _split_generators(self, dl_manager) -> dict:
        cfg: SyntheticJftConfig = self.builder_config
        sizes = {"train": cfg.train_examples, "fasteval": cfg.fasteval_examples,
                 "test": cfg.test_examples}
        return {split: self._generate_examples(split, n)
                for split, n in sizes.items() if n > 0}

    def _generate_examples(self, split: str, count: int) -> Iterator[tuple[int, dict]]:
        cfg: SyntheticJftConfig = self.builder_config
        params = cfg.generation_params()
        taxonomy = tax.build_taxonomy(cfg.num_leaves)
        closure = ancestors_closure(taxonomy)
        monitored = set(monitor_classes(taxonomy, cfg.monitor_fraction, cfg.seed))
        for ex in _render_in_workers(params, split, count):
            if split != "train":
                labels = {a for c in ex["labels"] for a in closure[c]}
                if split == "fasteval":
                    labels &= monitored
                ex["labels"] = sorted(labels)
            yield ex["image_id"], ex


def _render_in_workers(params: render.GenerationParams, split: str,
                       count: int) -> Iterator[dict]:
    """Examples 0..count-1 of `split` in order, rendered by worker processes.

    Spawned workers import only NumPy + PIL modules, never TensorFlow. A
    worker that dies stops generation with an error (a `multiprocessing.Pool`
    would restart it and wait forever for its lost tasks). At most two tasks
    per worker are in flight, so memory stays bounded.
    """
    processes = max(1, min(os.cpu_count() or 1, count // 256))
    starts = iter(range(0, count, _CHUNK))
    in_flight: collections.deque[futures.Future] = collections.deque()
    with futures.ProcessPoolExecutor(
            processes, mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker, initargs=(params,)) as pool:
        def submit() -> None:
            start = next(starts, None)
            if start is not None:
                with _main_hidden_from_workers():  # workers start on submit
                    in_flight.append(pool.submit(_render_range, split, start,
                                                 min(start + _CHUNK, count)))
        try:
            for _ in range(2 * processes):
                submit()
            while in_flight:
                chunk = in_flight.popleft().result()
                submit()
                yield from chunk
        except futures.process.BrokenProcessPool as e:
            raise RuntimeError(
                f"synthetic_jft: a process rendering the {split!r} split died ({e}); "
                "nothing was written. Out of memory? Try again with fewer processes "
                "running.") from e
        finally:
            for f in in_flight:
                f.cancel()
