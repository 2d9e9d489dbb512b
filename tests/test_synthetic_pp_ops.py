"""The held-out-family pieces: the class subset that never labels a family, the op
that keeps only that family's objects, and the configs that use them."""

import numpy as np
import pytest
import tensorflow as tf

from configs.transfer import faster_rcnn_synthetic
from input_pipeline.sources.synthetic_jft import builder, taxonomy
from input_pipeline.sources.synthetic_jft.pp_ops import objects_of_families
from studies.dense import heldout_pretrain


def test_classes_outside_a_family_leave_out_its_whole_subtree():
    names = taxonomy.build_taxonomy(40).names
    kept = taxonomy.classes_outside(names, "star")
    dropped = set(names) - set(kept)
    assert "star" in dropped and all(n == "star" or n.startswith("star/") for n in dropped)
    assert {n.split("/")[0] for n in kept} == {"polygon", "round", "bar"}
    with pytest.raises(ValueError, match="family 'stars'"):
        taxonomy.classes_outside(names, "stars")


def test_heldout_pretraining_uses_the_builders_own_class_names():
    for size, leaves in heldout_pretrain.NUM_LEAVES.items():
        cfg = next(c for c in builder.SyntheticJft.BUILDER_CONFIGS if c.name == size)
        assert cfg.num_leaves == leaves
        c = heldout_pretrain.get_config(None if size == "demo" else size)
        assert not any(n.startswith("star") for n in c.input.data.classes)


def test_objects_of_families_keeps_one_family_renumbered():
    order = taxonomy.SEMANTIC_LEVELS["family"]  # polygon, star, round, bar
    objects = {"label": tf.constant([1, 0, 1, 3], tf.int64),  # family ids
               "bbox": tf.constant(np.arange(16, dtype=np.float32).reshape(4, 4)),
               "keypoints": tf.zeros((4, 5, 3))}
    out = objects_of_families(None, families=("star",))({"objects": objects})["objects"]
    np.testing.assert_array_equal(out["label"], [0, 0])
    np.testing.assert_array_equal(out["bbox"], np.arange(16).reshape(4, 4)[[0, 2]])
    assert out["keypoints"].shape == (2, 5, 3)
    two = objects_of_families(None, families=("bar", "polygon"))({"objects": objects})
    np.testing.assert_array_equal(two["objects"]["label"], [1, 0])  # polygon -> 1, bar -> 0
    assert order.index("star") == 1
    with pytest.raises(ValueError, match="give families of"):
        objects_of_families(None, families=("square",))


def test_the_heldout_detector_has_one_class_and_that_family_only():
    c = faster_rcnn_synthetic.get_config("tiny,heldout")
    assert c.model.num_classes == 1
    assert "objects_to_level('family')|objects_of_families(('star',))" in c.input.pp
    assert "objects_of_families(('star',))" in c.evals.test.pp
    assert faster_rcnn_synthetic.get_config("tiny").model.num_classes == 4
    with pytest.raises(ValueError, match="options are tiny, heldout"):
        faster_rcnn_synthetic.get_config("huge")
