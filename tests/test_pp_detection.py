"""Detection preprocessing: aspect-keeping resize, and the packed targets
(training boxes on the current image, ground truth in the original one)."""

import numpy as np
import pytest
import tensorflow as tf

from input_pipeline.keys import MASK_KEY, SEED_KEY
from input_pipeline.pp.base import PPContext
from input_pipeline.pp.builder import build_preprocess
from input_pipeline.pp.registry import default_registry
from input_pipeline.sources.synthetic_jft import pp_ops as synthetic_ops
from input_pipeline.sources.synthetic_jft import taxonomy
from input_pipeline.stream import batches

B = "boxes='objects/bbox'"
# pad_to's output has no static size (it pads to AT LEAST 64); central_crop
# at the same size is a no-op that fixes it, so batches can be formed.
FIT = f"pad_to(64, {B})|central_crop(64, {B})"
TRAIN = (f"resize_aspect(40, 64, {B})|flip_lr({B})|{FIT}|value_range(-1, 1)"
         "|detection_pack({m})")
EVAL = f"resize_aspect(40, 64, {B})|{FIT}|detection_pack({{m}})"


def run(spec, example, seed=(0, 0), ctx=None):
    pp = build_preprocess(spec, default_registry(), ctx or PPContext())
    data = tf.nest.map_structure(tf.constant, example)
    data[SEED_KEY] = tf.constant(seed, tf.int64)
    out = pp.rest(pp.decode_stage(data))
    out.pop(SEED_KEY)
    return tf.nest.map_structure(lambda t: t.numpy(), out)


@pytest.mark.parametrize("hw, want", [
    ((300, 400), (600, 800)),     # shorter side to 600; longer 800 <= 1024
    ((400, 300), (800, 600)),
    ((200, 1000), (205, 1024)),   # 600 x 3000 would be too long: longer to 1024
    ((1000, 500), (1024, 512)),   # 1200 x 600: longer to 1024
    ((600, 1024), (600, 1024)),   # already there
    ((3, 5), (600, 1000)),        # upsampling
    ((480, 640), (600, 800)),
    ((427, 640), (600, 899)),     # 640 * 600 / 427 = 899.3
    ((100, 171), (599, 1024)),    # 171 * 6 = 1026 > 1024: 100 * 1024 / 171 = 598.8
])
def test_resize_aspect_sizes_and_recorded_shapes(hw, want):
    """Sizes worked out by hand from the OD API's keep_aspect_ratio_resizer rule."""
    image = np.zeros((*hw, 3), np.uint8)
    boxes = np.array([[0.1, 0.2, 0.5, 0.9]], np.float32)
    out = run(f"resize_aspect(600, 1024, {B})", {"image": image, "objects": {"bbox": boxes}})
    assert out["image"].shape == (*want, 3) and out["image"].dtype == np.uint8
    np.testing.assert_array_equal(out["orig_hw"], hw)
    np.testing.assert_array_equal(out["image_hw"], want)
    assert out["orig_hw"].dtype == out["image_hw"].dtype == np.int32
    np.testing.assert_array_equal(out["objects"]["bbox"], boxes)  # unchanged by a resize


def test_resize_aspect_rejects_bad_sizes():
    with pytest.raises(ValueError, match="min_size <= max_size"):
        build_preprocess("resize_aspect(900, 600)", default_registry(),
                         PPContext())


def drawn_example(h=30, w=50):
    """Two bright rectangles (different levels) on a dark image, and their boxes."""
    img = np.full((h, w, 3), 10, np.uint8)
    rects = [(4, 6, 14, 20, 250), (18, 30, 27, 46, 150)]  # r0, c0, r1, c1 (exclusive)
    for r0, c0, r1, c1, v in rects:
        img[r0:r1, c0:c1] = v
    boxes = np.array([[r0 / h, c0 / w, r1 / h, c1 / w] for r0, c0, r1, c1, _ in rects],
                     np.float32)
    return {"image": img, "image_id": np.int64(7),
            "objects": {"bbox": boxes, "label": np.array([3, 5], np.int64)}}, rects


def test_boxes_stay_on_the_drawn_objects_after_resize_flip_pad():
    ex, rects = drawn_example()
    flips = set()
    for seed in range(6):
        out = run(TRAIN.format(m=4), ex, seed=(seed, 1))
        img = out["image"][..., 0]
        assert img.shape == (64, 64)
        np.testing.assert_array_equal(out["image_hw"], [38, 64])  # 30x50 * 64/50
        for (*_, level), box in zip(rects, out["boxes"][:2]):
            y0, x0, y1, x1 = np.round(box * 64).astype(int)
            grey = -1 + 2 * level / 255
            inside = img[y0 + 1:y1 - 1, x0 + 1:x1 - 1]
            np.testing.assert_allclose(inside, grey, atol=0.02)
            # One pixel around the box: the dark background (bilinear edges aside).
            ring = np.concatenate([img[y0 - 2, x0:x1], img[y1 + 1, x0:x1],
                                   img[y0:y1, x0 - 2], img[y0:y1, x1 + 1]])
            assert (ring < -0.8).all()
        flips.add(bool(out["boxes"][0, 1] > 0.5))
        assert (img[38:] == -1).all() and out["box_valid"].tolist() == [1, 1, 0, 0]
    assert flips == {True, False}  # both outcomes were checked


def test_ground_truth_is_the_input_in_original_coordinates():
    ex, _ = drawn_example()
    out = run(EVAL.format(m=4), ex)
    np.testing.assert_allclose(out["gt_boxes"][:2], ex["objects"]["bbox"], atol=1e-6)
    np.testing.assert_array_equal(out["gt_boxes"][2:], 0)
    # The training boxes are on the padded image: the content is 38 x 64 of 64 x 64.
    np.testing.assert_allclose(out["boxes"][:2],
                               ex["objects"]["bbox"] * [38 / 64, 1, 38 / 64, 1], atol=1e-6)
    np.testing.assert_array_equal(out["orig_hw"], [30, 50])
    # No objects/area: the box area in original pixels.
    np.testing.assert_allclose(out["gt_areas"][:2], [10 * 14, 9 * 16], rtol=1e-5)
    assert out["image_id"] == 7 and out["image_id"].dtype == np.int64
    assert out["gt_classes"].tolist() == [3, 5, 0, 0]
    assert out["gt_valid"].tolist() == [True, True, False, False]
    assert not out["gt_iscrowd"].any() and not out["difficult"].any()

    # With the dataset's own area and flags, and a string id (VOC's).
    ex["objects"].update(area=np.array([99.0, 5.0], np.float32),
                         is_crowd=np.array([False, True]),
                         is_difficult=np.array([True, False]))
    ex["image_id"] = np.bytes_("000005")
    out = run(EVAL.format(m=3), ex)
    np.testing.assert_allclose(out["gt_areas"], [99, 5, 0])
    assert out["is_crowd"].tolist() == out["gt_iscrowd"].tolist() == [False, True, False]
    assert out["difficult"].tolist() == out["gt_difficult"].tolist() == [True, False, False]
    assert out["image_id"] == 5


def test_padding_and_truncation_to_max_objects():
    rng = np.random.default_rng(0)
    lo = rng.uniform(0, 0.5, (5, 2))
    boxes = np.concatenate([lo, lo + rng.uniform(0.1, 0.5, (5, 2))], 1).astype(np.float32)
    ex = {"image": np.zeros((64, 64, 3), np.uint8), "image_id": np.int64(1),
          "objects": {"bbox": boxes, "label": np.arange(5, dtype=np.int64)}}
    few = run("detection_pack(3)", ex)
    assert few["boxes"].shape == (3, 4) and few["boxes"].dtype == np.float32
    np.testing.assert_allclose(few["boxes"], boxes[:3])  # the first ones are kept
    assert few["classes"].tolist() == [0, 1, 2] and few["classes"].dtype == np.int32
    assert few["box_valid"].all()
    many = run("detection_pack(8)", ex)
    np.testing.assert_allclose(many["boxes"][:5], boxes)
    np.testing.assert_array_equal(many["boxes"][5:], 0)
    assert many["box_valid"].tolist() == [True] * 5 + [False] * 3
    none = run("detection_pack(2)", {**ex, "objects": {
        "bbox": np.zeros((0, 4), np.float32), "label": np.zeros((0,), np.int64)}})
    assert not none["box_valid"].any() and none["boxes"].shape == (2, 4)
    # Without an id, the example's position in its split names it.
    del ex["image_id"]
    assert run("detection_pack(2)", {**ex, "_index": np.int64(41)})["image_id"] == 41


def test_family_classes_on_synthetic_jft_through_the_pipeline(tiny_source):
    """synthetic_jft's objects_to_level('family') then detection_pack, against the
    taxonomy's own shapes (not the class names)."""
    assert "bbox" in tiny_source.info.features["objects"]
    ctx = PPContext(num_classes=tiny_source.num_classes(),
                    hierarchy=tiny_source.hierarchy())
    tax = taxonomy.build_taxonomy(tiny_source.builder.builder_config.num_leaves)
    leaf_of_class = {int(c): i for i, c in enumerate(tax.leaf_ids)}
    spec = (f"decode|resize_aspect(40, 64, {B})|{FIT}|value_range(-1, 1)"
            "|objects_to_level('family')|detection_pack(6)|keep('image', 'boxes', 'classes', "
            "'box_valid', 'image_hw', 'orig_hw', 'gt_boxes', 'gt_classes', 'gt_valid', "
            "'image_id')")
    pp = build_preprocess(spec, default_registry(tiny_source.pp_ops), ctx)
    ds, _ = batches.eval_dataset(tiny_source, "test[:16]", pp, 8,
                                 shard=batches.HostShard(0, 1))
    raw = {int(ex["image_id"]): ex["objects"] for ex in tiny_source.read(
        "test[:16]").as_numpy_iterator()}
    seen, n = set(), 0
    for batch in batches.HostIterator(ds):
        assert batch["image"].shape == (8, 64, 64, 3) and batch["classes"].shape == (8, 6)
        for i in np.flatnonzero(batch[MASK_KEY]):
            objects = raw[int(batch["image_id"][i])]
            k = min(len(objects["label"]), 6)
            want = [taxonomy.SHAPE_FAMILY[tax.leaf_shape[leaf_of_class[int(c)]]]
                    for c in objects["label"][:k]]
            assert batch["classes"][i, :k].tolist() == want
            assert batch["box_valid"][i].sum() == k
            np.testing.assert_allclose(batch["gt_boxes"][i, :k], objects["bbox"][:k],
                                       atol=1e-6)
            np.testing.assert_array_equal(batch["orig_hw"][i], [32, 32])
            seen |= set(want)
            n += 1
    assert n == 16 and len(seen) >= 2 and seen <= set(range(len(taxonomy.FAMILIES)))


def test_family_level_needs_the_hierarchy():
    with pytest.raises(ValueError, match="no class names"):
        build_preprocess("objects_to_level('family')", default_registry(synthetic_ops.OPS),
                         PPContext())
