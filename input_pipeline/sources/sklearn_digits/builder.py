"""TFDS builder `sklearn_digits`: scikit-learn's 1,797 real 8x8 handwritten digits.

A small, real transfer target that needs no download: scikit-learn ships the
images. Each 8x8 image (values 0-16) is scaled to 0-255, upscaled by pixel
repetition (nearest neighbour, so the stored pixels are exactly the original
ones), copied to three channels and stored as PNG. The train/test split is
fixed by a seed and stratified by class.

    import input_pipeline.sources.sklearn_digits.builder  # registers it with TFDS
    builder = tfds.builder("sklearn_digits", data_dir=...)  # 64 px
    builder.download_and_prepare()   # in-process; nothing is downloaded
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds

NUM_CLASSES = 10
SOURCE_SIZE = 8
SOURCE_MAX = 16  # load_digits pixel values are 0..16


@dataclasses.dataclass(eq=False)
class DigitsConfig(tfds.core.BuilderConfig):
    """image_size: a multiple of 8; test_examples: stratified test split size;
    seed: fixes the split."""

    image_size: int = 64
    test_examples: int = 500
    seed: int = 0


def to_image(digit: np.ndarray, image_size: int) -> np.ndarray:
    """An 8x8 digit (0..16) as a (size, size, 3) uint8 image, by pixel repetition."""
    if image_size % SOURCE_SIZE:
        raise ValueError(f"image_size {image_size} must be a multiple of {SOURCE_SIZE}.")
    grey = np.round(np.asarray(digit, np.float64) * (255 / SOURCE_MAX)).astype(np.uint8)
    scale = image_size // SOURCE_SIZE
    big = np.repeat(np.repeat(grey, scale, axis=0), scale, axis=1)
    return np.repeat(big[:, :, None], 3, axis=2)


def stratified_test_indices(labels: np.ndarray, test_examples: int, seed: int
                            ) -> np.ndarray:
    """Sorted indices of a seeded test split with each class's share of `labels`.

    Per-class test counts are the proportional shares rounded by largest
    remainder, so they sum to exactly `test_examples`.
    """
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * test_examples / len(labels)
    take = np.floor(exact).astype(int)
    order = np.argsort(-(exact - take), kind="stable")
    take[order[:test_examples - take.sum()]] += 1
    rng = np.random.default_rng([seed, 1797])
    picked = [rng.permutation(np.flatnonzero(labels == c))[:n] for c, n in zip(classes, take)]
    return np.sort(np.concatenate(picked))


def load_source() -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 8, 8) in 0..16, labels (N,)) as scikit-learn ships them."""
    from sklearn.datasets import load_digits  # only needed to generate

    digits = load_digits()
    return digits.images, digits.target.astype(np.int64)


class SklearnDigits(tfds.core.GeneratorBasedBuilder):
    """sklearn_digits: real handwritten digits, upscaled, fixed stratified split."""

    name = "sklearn_digits"
    # The splits it can write, read without data by SourceKind.declared_splits.
    SPLITS = ("train", "test")
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}  # noqa: RUF012 (TFDS API)
    BUILDER_CONFIGS = [  # noqa: RUF012 (TFDS API)
        DigitsConfig(name="64px", description="64 px; 1,297 train / 500 test.",
                     image_size=64),
        DigitsConfig(name="32px", description="32 px; 1,297 train / 500 test.",
                     image_size=32),
    ]
    DEFAULT_CONFIG_NAME = "64px"

    def _info(self) -> tfds.core.DatasetInfo:
        size = self.builder_config.image_size
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(size, size, 3), encoding_format="png"),
                "label": tfds.features.ClassLabel(num_classes=NUM_CLASSES),
                "index": np.int64,  # position in sklearn's load_digits()
            }),
            supervised_keys=("image", "label"),
            description="scikit-learn's load_digits (UCI optical digits test set), "
                        "upscaled by pixel repetition, grey copied to RGB.",
        )

    def _split_generators(self, dl_manager) -> dict:
        cfg: DigitsConfig = self.builder_config
        images, labels = load_source()
        test = stratified_test_indices(labels, cfg.test_examples, cfg.seed)
        train = np.setdiff1d(np.arange(len(labels)), test)
        return {"train": self._generate_examples(images, labels, train),
                "test": self._generate_examples(images, labels, test)}

    def _generate_examples(self, images: np.ndarray, labels: np.ndarray,
                           indices: np.ndarray) -> Iterator[tuple[int, dict]]:
        size = self.builder_config.image_size
        for i in indices:
            yield int(i), {"image": to_image(images[i], size), "label": int(labels[i]),
                           "index": int(i)}
