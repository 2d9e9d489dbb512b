"""Joint augmentation: image, label map, boxes and keypoints stay aligned."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from input_pipeline.keys import SEED_KEY
from input_pipeline.pp.base import PPContext
from input_pipeline.pp.builder import build_preprocess
from input_pipeline.pp.registry import default_registry
from input_pipeline.sources.synthetic_jft import taxonomy

KEYS = "keys=('image', 'segmentation')"
GEOM = "boxes='objects/bbox', keypoints='objects/keypoints'"


def run(spec, example, seed=(0, 0), ctx=None):
    pp = build_preprocess(spec, default_registry(), ctx or PPContext())
    data = tf.nest.map_structure(tf.constant, example)
    data[SEED_KEY] = tf.constant(seed, tf.int64)
    out = pp.rest(pp.decode_stage(data))
    out.pop(SEED_KEY)
    return tf.nest.map_structure(lambda t: t.numpy(), out)


def marked_example(rng, h=48, w=64, size=5):
    """Four bright squares of distinct grey levels; the label map holds square
    j + 1 under square j, one object's keypoint j sits at the square's centre.
    Squares 0/1 and 2/3 are left/right pairs (0 and 2 on the left)."""
    img = rng.integers(0, 40, (h, w, 3)).astype(np.uint8)
    seg = np.zeros((h, w, 1), np.uint8)
    seg[: h // 6, : w // 6] = 255  # an ignore region must survive too
    kps = np.zeros((1, 4, 3), np.float32)
    rows = rng.choice(np.arange(h // 6 + 3, h - 3), size=2, replace=False)
    for j in range(4):
        cy = rows[j // 2]
        cx = rng.integers(3, w // 2 - 3) if j % 2 == 0 else rng.integers(w // 2 + 3, w - 3)
        img[cy - size // 2: cy + size // 2 + 1, cx - size // 2: cx + size // 2 + 1] = (
            255, 60 + 60 * j, 0)
        seg[cy - size // 2: cy + size // 2 + 1, cx - size // 2: cx + size // 2 + 1] = j + 1
        kps[0, j] = ((cy + 0.5) / h, (cx + 0.5) / w, 1)
    return {"image": img, "segmentation": seg,
            "objects": {"keypoints": kps, "bbox": np.zeros((1, 4), np.float32)}}


def test_crop_flip_resize_keep_marks_label_map_and_keypoints_aligned():
    rng = np.random.default_rng(0)
    spec = (f"random_crop((40, 52), {KEYS}, {GEOM})"
            f"|flip_lr({KEYS}, {GEOM}, keypoint_pairs=((0, 1), (2, 3)))"
            f"|resize((30, 34), {KEYS})")
    swap = [1, 0, 3, 2]
    flips = visible = hidden = 0
    for seed in range(24):
        ex = marked_example(rng)
        out = run(spec, ex, seed=(seed, 1))
        img, seg, kps = out["image"], out["segmentation"][..., 0], out["objects"]["keypoints"][0]
        assert img.shape == (30, 34, 3) and seg.shape == (30, 34)
        assert set(np.unique(seg)) <= {0, 1, 2, 3, 4, 255}
        # Which way the pair 1/2 faces tells whether this draw flipped.
        cols = {v: np.nonzero(seg == v)[1].mean() for v in (1, 2) if (seg == v).any()}
        flipped = cols[1] > cols[2] if len(cols) == 2 else None
        for k, (y, x, vis) in enumerate(kps):
            inside = 0 <= y < 1 and 0 <= x < 1
            assert vis == float(inside), (seed, k, y, x, vis)
            if not vis:
                hidden += 1
                continue
            visible += 1
            r, c = int(y * 30), int(x * 34)
            mark = seg[r, c] - 1  # the square under keypoint k, by the label map
            assert 0 <= mark < 4, (seed, k)
            # The image shows that same square there (its own grey level).
            assert img[r, c, 0] > 200 and abs(int(img[r, c, 1]) - (60 + 60 * mark)) < 25
            if flipped is not None:
                assert mark == (swap[k] if flipped else k), (seed, k, flipped)
        flips += bool(flipped)
    assert 4 <= flips <= 20 and visible > 40 and hidden > 0


@pytest.mark.parametrize("dtype", [np.uint8, np.int32])
def test_label_maps_keep_only_their_values_and_255(dtype):
    rng = np.random.default_rng(1)
    seg = rng.choice(np.array([0, 3, 7, 255], dtype), size=(21, 27, 1))
    img = rng.integers(0, 256, (21, 27, 3)).astype(np.uint8)
    ex = {"image": img, "segmentation": seg}
    for spec in (f"resize((13, 40), {KEYS})", f"resize_small(9, {KEYS})",
                 f"inception_crop(17, {KEYS})", f"pad_to(30, {KEYS})|random_crop(29, {KEYS})",
                 f"resize(50, {KEYS})|central_crop((31, 45), {KEYS})|flip_lr({KEYS})"):
        for seed in range(3):
            out = run(spec, ex, seed=(seed, 5))
            assert out["segmentation"].dtype == dtype
            assert set(np.unique(out["segmentation"])) <= {0, 3, 7, 255}, spec
    # Nearest neighbour as a NumPy reference (half-pixel centres), and the image
    # is interpolated, not nearest.
    out = run(f"resize((13, 40), {KEYS})", ex)
    rows = np.minimum(((np.arange(13) + 0.5) * 21 / 13).astype(int), 20)
    cols = np.minimum(((np.arange(40) + 0.5) * 27 / 40).astype(int), 26)
    np.testing.assert_array_equal(out["segmentation"], seg[rows][:, cols])
    assert (out["image"] != img[rows][:, cols]).mean() > 0.5


def test_padding_fills_label_maps_with_ignore_and_the_image_with_fill():
    img = np.full((4, 5, 3), 9, np.uint8)
    seg = np.ones((4, 5, 1), np.uint8)
    out = run(f"pad_to((6, 8), {KEYS}, fill=3)", {"image": img, "segmentation": seg})
    assert out["segmentation"].shape == (6, 8, 1)
    np.testing.assert_array_equal(out["segmentation"][:4, :5], 1)
    assert (out["segmentation"][4:] == 255).all() and (out["segmentation"][:, 5:] == 255).all()
    assert (out["image"][4:] == 3).all() and (out["image"][:4, :5] == 9).all()


def coords_image(h, w):
    """Pixel (i, j) holds (i, j): a crop's window can be read off its corner."""
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([yy, xx, np.zeros_like(yy)], -1).astype(np.uint8)


def reference_window(boxes, kps, top, left, h, w, full_h, full_w, flipped):
    """Float64 NumPy version of crop-then-flip for boxes and keypoints."""
    s = np.array([full_h / h, full_w / w])
    t = np.array([top / h, left / w])
    b = np.clip(np.concatenate([boxes[:, :2] * s - t, boxes[:, 2:] * s - t], 1), 0, 1)
    yx = kps[..., :2] * s - t
    vis = kps[..., 2] * np.all((yx >= 0) & (yx < 1), -1)
    if flipped:
        b = np.stack([b[:, 0], 1 - b[:, 3], b[:, 2], 1 - b[:, 1]], 1)
        yx = np.stack([yx[..., 0], 1 - yx[..., 1]], -1)
    return b, np.concatenate([yx, vis[..., None]], -1)


def test_boxes_and_keypoints_match_a_numpy_reference():
    rng = np.random.default_rng(2)
    full_h, full_w, h, w = 40, 50, 24, 30
    spec = (f"random_crop(({h}, {w}), {GEOM})|flip_lr({GEOM})")
    seen_flip = set()
    for seed in range(16):
        lo = rng.uniform(0, 0.8, (6, 2))
        boxes = np.concatenate([lo, lo + rng.uniform(0.05, 0.5, (6, 2))], 1).clip(0, 1)
        kps = np.concatenate([rng.uniform(0, 1, (6, 3, 2)),
                              rng.integers(0, 2, (6, 3, 1))], -1)
        ex = {"image": coords_image(full_h, full_w),
              "objects": {"bbox": boxes.astype(np.float32), "keypoints": kps.astype(np.float32)}}
        out = run(spec, ex, seed=(seed, 9))
        img = out["image"].astype(int)
        flipped = img[0, 0, 1] > img[0, -1, 1]
        top, left = img[0, 0, 0], min(img[0, 0, 1], img[0, -1, 1])
        want_b, want_k = reference_window(boxes, kps, top, left, h, w, full_h, full_w, flipped)
        np.testing.assert_allclose(out["objects"]["bbox"], want_b, atol=1e-5)
        np.testing.assert_allclose(out["objects"]["keypoints"], want_k, atol=1e-5)
        seen_flip.add(bool(flipped))
    assert seen_flip == {True, False}


def test_padding_rescales_boxes():
    boxes = np.array([[0.5, 0.25, 1.0, 0.75]], np.float32)
    out = run("pad_to((8, 10), boxes='objects/bbox')",
              {"image": np.zeros((4, 5, 3), np.uint8), "objects": {"bbox": boxes}})
    np.testing.assert_allclose(out["objects"]["bbox"], [[0.25, 0.125, 0.5, 0.375]])


@pytest.mark.parametrize("op", ["random_crop(20)", "flip_lr",
                                "inception_crop(16, method='nearest')",
                                "pad_to(40)|random_crop(36)"])
def test_one_draw_for_all_keys_and_the_same_as_the_image_alone(op):
    rng = np.random.default_rng(3)
    lab = rng.integers(0, 200, (32, 36, 1)).astype(np.uint8)
    img = np.repeat(lab, 3, -1)
    keys = "keys=('image', 'segmentation'), label_keys=('segmentation',)"
    joint = "|".join(f"{o[:-1]}, {keys})" if o.endswith(")") else f"{o}({keys})"
                     for o in op.split("|"))
    alone = {}
    for seed in range(6):
        out = run(joint, {"image": img, "segmentation": lab}, seed=(seed, 3))
        if "pad_to" not in op:  # padding: the image gets 0, the labels 255
            np.testing.assert_array_equal(out["image"][..., :1], out["segmentation"])
        else:
            pad = out["segmentation"] == 255
            np.testing.assert_array_equal(out["image"][..., :1][~pad], out["segmentation"][~pad])
        single = run(op, {"image": img}, seed=(seed, 3))["image"]
        np.testing.assert_array_equal(single, out["image"])
        alone[seed] = single
    assert len({a.tobytes() for a in alone.values()}) > 1  # the draws do vary


def test_bad_joint_arguments_are_clear_errors():
    reg, ctx = default_registry(), PPContext()
    with pytest.raises(ValueError, match="key='image' and keys=.*give one of them"):
        build_preprocess("flip_lr(key='image', keys=('image',))", reg, ctx)
    with pytest.raises(ValueError, match="keypoint_pairs=.*pairs of distinct"):
        build_preprocess("flip_lr(keypoint_pairs=((1, 1),))", reg, ctx)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="'segmentation' and 'image' differ in height or width"):
        run(f"random_crop(4, {KEYS})", {"image": np.zeros((8, 8, 3), np.uint8),
                                       "segmentation": np.zeros((8, 9, 1), np.uint8)})
    with pytest.raises(KeyError, match="no 'objects/bbox'"):
        run("flip_lr(boxes='objects/bbox')", {"image": np.zeros((4, 4, 3), np.uint8)})


def test_single_key_ops_take_key_and_key_result():
    out = run("value_range(0, 1, key='x')|onehot(4, key='y')|onehot(4, key='y', key_result='z')",
              {"x": np.array([[[255]]], np.uint8), "y": np.int64(2)})
    np.testing.assert_allclose(out["x"], [[[1.0]]])
    np.testing.assert_array_equal(out["labels"], [0, 0, 1, 0])
    np.testing.assert_array_equal(out["z"], [0, 0, 1, 0])
    assert out["y"] == 2


def png_array(data: bytes) -> np.ndarray:
    return np.array(Image.open(io.BytesIO(data)))


def test_semantic_classes_of_real_synthetic_examples(tiny_source):
    """The op against a NumPy reference built from the taxonomy (not from names)."""
    ctx = PPContext(num_classes=tiny_source.num_classes(),
                    hierarchy=tiny_source.hierarchy())
    tax = taxonomy.build_taxonomy(tiny_source.builder.builder_config.num_leaves)
    leaf_of_class = {int(c): i for i, c in enumerate(tax.leaf_ids)}
    n = taxonomy.num_semantic_classes("family")
    assert n == 1 + len(taxonomy.FAMILIES)
    raw = tiny_source.read("test")
    spec = "decode(1, key='segmentation')|semantic_from_instances('family')"
    # A synthetic_jft op: its source registers it, the standard ops do not have it.
    with pytest.raises(KeyError, match="semantic_from_instances"):
        build_preprocess(spec, default_registry(), ctx)
    pp = build_preprocess(spec, default_registry(tiny_source.pp_ops), ctx)
    examples = list(raw.take(24).as_numpy_iterator())
    seen = set()
    for ex in examples:
        inst = png_array(ex["segmentation"])
        fam = [1 + taxonomy.SHAPE_FAMILY[tax.leaf_shape[leaf_of_class[int(c)]]]
               for c in ex["objects"]["label"]]
        want = np.array([0, *fam])[inst]
        data = {"segmentation": tf.constant(ex["segmentation"]),
                "objects": {"label": tf.constant(ex["objects"]["label"])},
                SEED_KEY: tf.constant([0, 0], tf.int64)}
        got = pp.rest(pp.decode_stage(data))["segmentation"].numpy()[..., 0]
        np.testing.assert_array_equal(got, want)
        seen |= set(np.unique(got).tolist())
    assert seen <= set(range(n)) and len(seen) >= 3

    # In a tf.data graph, with padding and a joint crop+flip after the op: 255
    # survives, and the classes stay those of the families.
    full = ("decode|" + spec + f"|pad_to(36, {KEYS}, {GEOM})|random_crop(34, {KEYS}, {GEOM})"
            f"|flip_lr({KEYS}, {GEOM})|resize(20, {KEYS})")
    pp = build_preprocess(full, default_registry(tiny_source.pp_ops), ctx)
    ds = raw.take(8).map(lambda ex: pp.rest(pp.decode_stage(
        {**ex, SEED_KEY: tf.cast(tf.stack([ex["image_id"], 1]), tf.int64)})))
    values = set()
    for out in ds.as_numpy_iterator():
        assert out["image"].shape == (20, 20, 3) and out["segmentation"].shape == (20, 20, 1)
        values |= set(np.unique(out["segmentation"]).tolist())
        assert (out["objects"]["bbox"] >= 0).all() and (out["objects"]["bbox"] <= 1).all()
    assert 255 in values and values <= set(range(n)) | {255}


def test_semantic_classes_without_tf_match_the_taxonomy():
    tax = taxonomy.build_taxonomy(40)
    fam = taxonomy.semantic_classes(tax.names, "family")
    shape = taxonomy.semantic_classes(tax.names, "shape")
    for i, c in enumerate(tax.leaf_ids):
        assert fam[c] == 1 + taxonomy.SHAPE_FAMILY[tax.leaf_shape[i]]
        assert shape[c] == 1 + tax.leaf_shape[i]
    assert taxonomy.num_semantic_classes("shape") == 1 + len(taxonomy.SHAPES)
    with pytest.raises(ValueError, match="level='colour'"):
        taxonomy.num_semantic_classes("colour")
    with pytest.raises(ValueError, match="names no family"):
        taxonomy.semantic_classes(["cat"], "family")
