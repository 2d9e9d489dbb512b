"""sklearn_digits: a real dataset, read back through TFDS, equals sklearn's digits."""

import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from input_pipeline.sources.registry import open_source
from input_pipeline.sources.sklearn_digits import builder as digits

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def digits_source(tmp_path_factory):
    data_dir = os.environ.get("BVL_TEST_DATA_DIR") or str(tmp_path_factory.mktemp("tfds"))
    return open_source("sklearn_digits/32px", data_dir=data_dir)


@pytest.fixture(scope="module")
def splits(digits_source):
    return {s: list(tfds.as_numpy(digits_source.builder.as_dataset(s))) for s in ("train", "test")}


def test_split_sizes_and_classes(digits_source, splits):
    assert len(splits["train"]) == 1297 and len(splits["test"]) == 500
    assert digits_source.info.splits["train"].num_examples == 1297
    assert digits_source.num_classes() == 10
    indices = [ex["index"] for s in splits.values() for ex in s]
    assert sorted(indices) == list(range(1797))  # disjoint, and every digit used


def test_test_split_is_stratified(splits):
    _, labels = digits.load_source()
    whole = np.bincount(labels, minlength=10) / len(labels)
    test = np.bincount([ex["label"] for ex in splits["test"]], minlength=10)
    assert test.sum() == 500
    np.testing.assert_array_less(np.abs(test - 500 * whole), 1.0)


def test_split_is_fixed_by_the_seed(splits):
    _, labels = digits.load_source()
    a = digits.stratified_test_indices(labels, 500, seed=0)
    np.testing.assert_array_equal(a, digits.stratified_test_indices(labels, 500, seed=0))
    assert not np.array_equal(a, digits.stratified_test_indices(labels, 500, seed=1))
    np.testing.assert_array_equal(sorted(ex["index"] for ex in splits["test"]), a)


def test_pixels_are_sklearns_digit_upscaled(splits):
    images, labels = digits.load_source()
    for ex in splits["train"][:50] + splits["test"][:50]:
        i = ex["index"]
        assert ex["label"] == labels[i]
        assert ex["image"].shape == (32, 32, 3) and ex["image"].dtype == np.uint8
        # Each 4x4 block of every channel is the source pixel scaled to 0..255.
        want = np.round(images[i] * 255 / 16)
        np.testing.assert_array_equal(ex["image"][::4, ::4, 0], want)
        np.testing.assert_array_equal(ex["image"], digits.to_image(images[i], 32))
    blocks = splits["test"][0]["image"][:, :, 1].reshape(8, 4, 8, 4)
    assert (blocks == blocks[:, :1, :, :1]).all()
    assert (splits["test"][0]["image"][..., 0] == splits["test"][0]["image"][..., 2]).all()
