import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from input_pipeline.hierarchy import LabelHierarchy
from input_pipeline.keys import SEED_KEY
from input_pipeline.pp import recipes
from input_pipeline.pp.base import PPContext
from input_pipeline.pp.builder import build_preprocess
from input_pipeline.pp.registry import default_registry
from input_pipeline.pp.spec import parse_pp_spec


def jpeg(h=48, w=64, seed=0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (h, w, 3), np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG")
    return buf.getvalue()


def run(spec, example, seed=(0, 0), ctx=None):
    pp = build_preprocess(spec, default_registry(), ctx or PPContext())
    data = {k: tf.constant(v) for k, v in example.items()}
    data[SEED_KEY] = tf.constant(seed, tf.int64)
    out = pp.rest(pp.decode_stage(data))
    return {k: v.numpy() for k, v in out.items() if k != SEED_KEY}


def test_parse_spec():
    assert parse_pp_spec("decode|resize(340)|value_range(-1, 1)|keep('image', 'labels')") == [
        ("decode", (), {}), ("resize", (340,), {}), ("value_range", (-1, 1), {}),
        ("keep", ("image", "labels"), {})]
    assert parse_pp_spec("inception_crop(224, area_min=8)") == [
        ("inception_crop", (224,), {"area_min": 8})]
    with pytest.raises(ValueError, match="must be literals"):
        parse_pp_spec("resize(size)")
    with pytest.raises(ValueError, match="not 'name' or 'name\\(args\\)'"):
        parse_pp_spec("resize(")


def test_unknown_op_and_bad_arguments():
    with pytest.raises(KeyError, match="unknown preprocessing op 'resise'.*known: .*resize"):
        build_preprocess("decode|resise(3)", default_registry(), PPContext())
    with pytest.raises(ValueError, match="resize"):
        build_preprocess("resize(1, 2, 3, 4, 5)", default_registry(), PPContext())


def test_paper_recipes_shapes_and_value_range():
    ex = {"image": jpeg(300, 400)}
    train = run(recipes.paper_train(), ex)["image"]
    ev = run(recipes.paper_eval(), ex)["image"]
    incep = run(recipes.inception_train(224), ex)["image"]
    for img, size in ((train, 299), (ev, 299), (incep, 224)):
        assert img.shape == (size, size, 3) and img.dtype == np.float32
        assert img.min() >= -1.0 and img.max() <= 1.0
        assert img.min() < -0.9 and img.max() > 0.9  # the range is used, not squashed


def test_central_crop_is_the_centre():
    img = np.arange(10 * 12 * 3, dtype=np.uint8).reshape(10, 12, 3)
    out = run("central_crop(4)", {"image": img})["image"]
    np.testing.assert_array_equal(out, img[3:7, 4:8])


def test_value_range_is_affine():
    img = np.array([[[0, 128, 255]]], np.uint8)
    np.testing.assert_allclose(run("value_range(-1, 1)", {"image": img})["image"],
                               [[[-1, 128 / 127.5 - 1, 1]]], atol=1e-6)


@pytest.mark.parametrize("spec", ["random_crop(32)|flip_lr", "inception_crop(32)"])
def test_random_ops_are_deterministic_under_a_seed(spec):
    img = np.random.default_rng(1).integers(0, 256, (48, 48, 3), np.uint8)
    a = run(spec, {"image": img}, seed=(3, 7))["image"]
    b = run(spec, {"image": img}, seed=(3, 7))["image"]
    np.testing.assert_array_equal(a, b)
    others = [run(spec, {"image": img}, seed=(3, s))["image"] for s in range(8, 16)]
    assert any(not np.array_equal(a, o) for o in others)


def test_flip_flips_about_half_the_time():
    img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    flips = [np.array_equal(run("flip_lr", {"image": img}, seed=(0, s))["image"],
                            img[:, ::-1]) for s in range(200)]
    assert 70 < sum(flips) < 130


def test_multi_hot_fills_ancestors_like_the_numpy_reference():
    pairs = [(2, 0), (3, 2), (0, 1), (4, 1), (5, 4), (5, 2)]
    h = LabelHierarchy.from_pairs(pairs, 6)
    ctx = PPContext(num_classes=6, hierarchy=h)
    for labels in ([3], [5], [3, 4], []):
        got = run("multi_hot", {"labels": np.array(labels, np.int64)}, ctx=ctx)["labels"]
        np.testing.assert_array_equal(got, h.fill_ancestors(labels))
    plain = run("multi_hot(fill_ancestors=False)", {"labels": np.array([3], np.int64)},
                ctx=ctx)["labels"]
    np.testing.assert_array_equal(plain, [0, 0, 0, 1, 0, 0])


def test_multi_hot_fills_descendants_of_verified_negatives():
    # 0 Animal <- 1 Mammal <- {2 Dog, 3 Cat}; 4 Toy <- 5 Teddy bear -> 0 Animal.
    h = LabelHierarchy.from_pairs([(1, 0), (2, 1), (3, 1), (5, 4), (5, 0)], 6)
    ctx = PPContext(num_classes=6, hierarchy=h)
    op = "multi_hot(key='negative_labels', fill_ancestors=False, fill_descendants=True)"
    for negatives, want in (([1], [0, 1, 1, 1, 0, 0]), ([4], [0, 0, 0, 0, 1, 1]),
                            ([2], [0, 0, 1, 0, 0, 0]), ([0], [1, 1, 1, 1, 0, 1]), ([], [0] * 6)):
        got = run(op, {"negative_labels": np.array(negatives, np.int64)},
                  ctx=ctx)["negative_labels"]
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="fill_ancestors=False with fill_descendants=True"):
        run("multi_hot(fill_descendants=True)", {"labels": np.array([1], np.int64)}, ctx=ctx)


def test_label_out_of_range_is_a_clear_error():
    ctx = PPContext(num_classes=6)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="label id out of range.*num_classes=6"):
        run("multi_hot", {"labels": np.array([2, 6], np.int64)}, ctx=ctx)


def test_keep_drops_other_keys_and_names_missing_ones():
    out = run("keep('a')", {"a": np.int32(1), "b": np.int32(2)})
    assert set(out) == {"a"}
    with pytest.raises(KeyError, match="has no \\['c'\\]"):
        run("keep('c')", {"a": np.int32(1)})


@pytest.mark.parametrize("objects,want", [(1, 0), (2, 1), (3, 2), (4, 2), (0, 0)])
def test_object_count_clips_the_number_of_objects(objects, want):
    pp = build_preprocess("object_count(max=3)|keep('label')", default_registry(),
                          PPContext())
    data = {"objects": {"label": tf.zeros([objects], tf.int64)},
            SEED_KEY: tf.constant((0, 0), tf.int64)}
    got = pp.rest(pp.decode_stage(data))["label"].numpy()
    assert got == want and got.dtype == np.int64


def test_a_bad_op_argument_names_the_op_and_the_argument():
    with pytest.raises(ValueError, match=r"random_crop\(size='big'\): size='big': give "
                                         r"pixels, an int or \(height, width\)"):
        build_preprocess("decode|random_crop(size='big')", default_registry(),
                         PPContext())


@pytest.mark.parametrize("op", ["random_crop", "central_crop"])
def test_a_crop_larger_than_the_image_says_so(op):
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=rf"{op}\(99, 99\): the crop is larger than the image"):
        run(f"decode|{op}(99)", {"image": jpeg(48, 64)})
