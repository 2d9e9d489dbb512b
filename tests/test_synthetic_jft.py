"""The synthetic dataset has JFT's difficulties, within stated bounds."""

import io
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from input_pipeline.sources.registry import open_source
from input_pipeline.sources.synthetic_jft import render, taxonomy
from input_pipeline.sources.synthetic_jft.builder import SyntheticJft

JFT_CLASSES = 18_291  # the paper's JFT-300M: every level of its hierarchy together


@pytest.fixture(scope="module")
def train(tiny_source):
    return list(tfds.as_numpy(tiny_source.builder.as_dataset("train")))


@pytest.fixture(scope="module")
def fasteval(tiny_source):
    return list(tfds.as_numpy(tiny_source.builder.as_dataset("fasteval")))


def test_hierarchy_is_four_levels_deep_with_the_leaves_asked_for(tiny_source):
    h = tiny_source.hierarchy()
    leaves = tiny_source.info.metadata["leaf_classes"]
    assert len(leaves) == tiny_source.builder.builder_config.num_leaves
    assert {len(h.ancestors()[c]) for c in leaves} == {4}
    for n in (10, 18_291):
        t = taxonomy.build_taxonomy(n)
        assert t.num_leaves == n and len(set(t.leaf_ids.tolist())) == n
        roots = {p for _, p in t.parents} - {c for c, _ in t.parents}
        assert t.num_classes == len(t.parents) + len(roots)


def test_class_frequencies_are_zipf(tiny_source, train):
    meta = tiny_source.info.metadata
    leaf_of_class = {c: i for i, c in enumerate(meta["leaf_classes"])}
    counts = np.zeros(len(leaf_of_class))
    for ex in train:
        for c in ex["objects"]["label"]:
            counts[leaf_of_class[int(c)]] += 1
    # Rank by the generator's frequencies (ranking by observed counts biases the fit).
    order = np.argsort(meta["leaf_frequencies"])[::-1]
    ranks = np.arange(1, len(order) + 1)
    slope = np.polyfit(np.log(ranks), np.log(counts[order] + 0.5), 1)[0]
    assert -1.25 < slope < -0.75, slope
    assert counts.max() / max(counts.min(), 1) > 15


def test_labels_per_image_and_noise_rate(train):
    labels_per_image = np.mean([len(ex["labels"]) for ex in train])
    objects_per_image = np.mean([len(ex["objects"]["label"]) for ex in train])
    assert 1.2 < labels_per_image < 2.0, labels_per_image  # JFT: 1.26 before fill-in
    assert objects_per_image > labels_per_image * 0.9
    wrong = total = missing = 0
    for ex in train:
        present = set(ex["objects"]["label"].tolist())
        given = set(ex["labels"].tolist())
        wrong += len(given - present)
        total += len(given)
        missing += len(present - given)
    assert 0.16 < wrong / total < 0.24, wrong / total  # the paper's ~20% noisy labels
    assert missing > 0.1 * total  # labels are not exhaustive


def test_noisy_labels_include_lookalike_confusions(tiny_source, train):
    t = taxonomy.build_taxonomy(tiny_source.builder.builder_config.num_leaves)
    leaf_index = {int(c): i for i, c in enumerate(t.leaf_ids)}
    lookalike = {int(t.leaf_ids[i]): int(t.leaf_ids[j]) for i, j in enumerate(t.lookalike)}
    confusions = sum(1 for ex in train for c in set(ex["labels"].tolist())
                     - set(ex["objects"]["label"].tolist())
                     if any(lookalike[o] == c for o in ex["objects"]["label"].tolist()))
    assert confusions > 0.04 * len(train)
    assert len(leaf_index) == t.num_leaves


def test_fasteval_is_clean_dense_and_restricted(tiny_source, fasteval):
    h = tiny_source.hierarchy()
    monitored = set(tiny_source.info.metadata["monitor_classes"])
    assert len(monitored) < tiny_source.num_classes()
    for ex in fasteval:
        want = {int(a) for o in ex["objects"]["label"] for a in h.ancestors()[o]} & monitored
        assert set(ex["labels"].tolist()) == want


def test_objects_have_masks_boxes_and_keypoints(tiny_source, fasteval):
    size = tiny_source.builder.builder_config.image_size
    for ex in fasteval[:100]:
        n = len(ex["objects"]["label"])
        seg = ex["segmentation"][..., 0]
        assert ex["image"].shape == (size, size, 3)
        assert set(np.unique(seg).tolist()) - {0} == set(range(1, n + 1))
        for k, box in enumerate(ex["objects"]["bbox"]):
            ys, xs = np.nonzero(seg == k + 1)
            np.testing.assert_allclose(box, [ys.min() / size, xs.min() / size,
                                             (ys.max() + 1) / size, (xs.max() + 1) / size])
        kp = ex["objects"]["keypoints"]
        assert kp.shape == (n, render.NUM_KEYPOINTS, 3) and set(np.unique(kp[..., 2])) <= {0, 1}


def test_rendering_is_deterministic():
    params = render.GenerationParams(32, 40, 0.2, 1.0, 0.7, 0.25, seed=5)
    t = taxonomy.build_taxonomy(40)
    a = render.render_example(params, t, "train", 11)
    b = render.render_example(params, t, "train", 11)
    c = render.render_example(params, t, "train", 12)
    assert a["image"] == b["image"] and a["labels"] == b["labels"]
    assert a["image"] != c["image"]
    assert np.asarray(Image.open(io.BytesIO(a["image"]))).shape == (32, 32, 3)


def test_class_count_without_building_matches_the_built_taxonomy():
    for n in (4, 5, 10, 40, 100, 500, 671, 672, 673, 5_000, 17_591):
        assert taxonomy.count_classes(n) == taxonomy.build_taxonomy(n).num_classes, n
    with pytest.raises(ValueError, match="exactly 13 classes"):
        taxonomy.leaves_for_classes(13)


@pytest.mark.parametrize("name", ["jft", "jft_smoke"])
def test_jft_sized_variants_have_jft_s_18291_classes_leaves_plus_parents(name):
    cfg = next(c for c in SyntheticJft.BUILDER_CONFIGS if c.name == name)
    t = taxonomy.build_taxonomy(cfg.num_leaves)
    assert t.num_classes == JFT_CLASSES
    parents = {p for _, p in t.parents}
    roots = parents - {c for c, _ in t.parents}
    assert len(roots) == 4  # the shape families
    assert not parents & set(t.leaf_ids.tolist())  # leaves are the drawn, bottom level
    assert t.num_leaves + len(parents) == JFT_CLASSES  # every class: a leaf or a parent


@pytest.fixture(scope="module")
def jft_smoke(tmp_path_factory):
    data_dir = os.environ.get("BVL_TEST_DATA_DIR") or str(tmp_path_factory.mktemp("tfds"))
    return open_source("synthetic_jft/jft_smoke", data_dir=data_dir)


def test_jft_smoke_dataset_is_jft_shaped_and_small(jft_smoke):
    assert jft_smoke.num_classes() == JFT_CLASSES
    meta = jft_smoke.info.metadata
    ancestors = jft_smoke.hierarchy().ancestors()
    assert {len(ancestors[c]) for c in meta["leaf_classes"]} == {4}  # four levels
    assert len(meta["leaf_classes"]) == taxonomy.leaves_for_classes(JFT_CLASSES)
    assert jft_smoke.info.splits["train"].num_examples <= 1000
    ex = next(iter(tfds.as_numpy(jft_smoke.builder.as_dataset("train"))))
    assert all(0 <= c < JFT_CLASSES for c in ex["labels"])
