"""The fused decode ops keep the result of the recipes they shortcut.

decode_jpeg_and_inception_crop must equal decode|inception_crop bit for bit
(same seed, same window); decode_jpeg_and_resize with DCT scaling must stay
close to decode|resize (bounded max and mean difference, far below a
one-pixel shift).
"""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from input_pipeline.keys import SEED_KEY
from input_pipeline.pp import decode as pp_decode
from input_pipeline.pp import recipes
from input_pipeline.pp.base import PPContext
from input_pipeline.pp.builder import build_preprocess
from input_pipeline.pp.registry import default_registry


def photo_like(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth shading, hard-edged shapes and sensor noise: the spectrum a JPEG
    of a photograph has (random pixels would be all high frequency)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (h // 32 + 2, w // 32 + 2, 3), np.uint8)
    img = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC), np.float64)
    for _ in range(12):
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        y1, x1 = y0 + rng.integers(h // 20, h // 4), x0 + rng.integers(w // 20, w // 4)
        img[y0:y1, x0:x1] = rng.integers(0, 256, 3)
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def encode(img: np.ndarray, fmt: str = "JPEG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


def run(spec: str, raw: bytes, seed=(0, 0)) -> np.ndarray:
    pp = build_preprocess(spec, default_registry(), PPContext())
    data = {"image": tf.constant(raw), SEED_KEY: tf.constant(seed, tf.int64)}
    return pp.rest(pp.decode_stage(data))["image"].numpy()


@pytest.fixture(scope="module")
def big_jpeg() -> bytes:
    return encode(photo_like(600, 800))


@pytest.mark.parametrize("size,area_min", [(64, 5), ((48, 80), 30)])
def test_inception_crop_fused_equals_decode_then_crop(big_jpeg, size, area_min):
    spec = f"inception_crop({size!r}, area_min={area_min})"
    fused = f"decode_jpeg_and_inception_crop({size!r}, area_min={area_min})"
    outs = []
    for s in range(6):
        ref = run(f"decode|{spec}", big_jpeg, seed=(2, s))
        got = run(fused, big_jpeg, seed=(2, s))
        np.testing.assert_array_equal(got, ref)
        outs.append(got)
    # Different seeds crop different windows: equality is not two constant outputs.
    assert any(not np.array_equal(outs[0], o) for o in outs[1:])


def test_inception_crop_fused_matches_for_png_and_grayscale_jpeg():
    png = encode(photo_like(120, 90, seed=1), "PNG")
    np.testing.assert_array_equal(run("decode_jpeg_and_inception_crop(32)", png, (4, 1)),
                                  run("decode|inception_crop(32)", png, (4, 1)))
    gray = encode(photo_like(120, 90, seed=2)[..., 0])
    got = run("decode_jpeg_and_inception_crop(32)", gray, (4, 2))
    assert got.shape == (32, 32, 3)
    np.testing.assert_array_equal(got, run("decode|inception_crop(32)", gray, (4, 2)))


def test_inception_recipe_fused_is_the_same_pipeline(big_jpeg):
    a = run(recipes.inception_train(56), big_jpeg, seed=(5, 5))
    b = run(recipes.inception_train(56, fused_decode=True), big_jpeg, seed=(5, 5))
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and a.shape == (56, 56, 3)


@pytest.mark.parametrize("source,target,ratio", [
    ((600, 800), (340, 340), 1), ((600, 800), (300, 300), 2), ((600, 800), (150, 200), 4),
    ((600, 800), (70, 90), 8), ((600, 800), (301, 100), 1), ((40, 40), (4, 4), 8)])
def test_dct_ratio_never_decodes_below_the_target(source, target, ratio):
    index = int(pp_decode.dct_ratio(tf.constant(source), target))
    assert pp_decode.DCT_RATIOS[index] == ratio


# Measured on this image (600x800, quality 90), max / mean |difference| of the
# uint8 pixels: 43 / 1.06 at 300 px (ratio 2), 85 / 2.27 at 140 px (ratio 4).
# On skimage's photos re-encoded at 1600x1200, at 340 px (ratio 2): max 9-42,
# mean 0.7-1.6, below the 1.2-3.8 by which an antialiased resize differs from
# the plain bilinear one (benchmarks/photo_pipeline_throughput.py prints these).
@pytest.mark.parametrize("target,max_bound,mean_bound", [(300, 60, 1.5), (140, 110, 3.0)])
def test_dct_scaled_decode_is_close_to_full_decode(big_jpeg, target, max_bound, mean_bound):
    full = run(f"decode|resize({target})", big_jpeg).astype(np.int32)
    fast = run(f"decode_jpeg_and_resize({target})", big_jpeg).astype(np.int32)
    plain = run(f"decode_jpeg_and_resize({target}, dct_scaling=False)", big_jpeg)
    np.testing.assert_array_equal(plain, full)  # the option off is the plain recipe
    assert fast.shape == full.shape == (target, target, 3)
    diff = np.abs(fast - full)
    assert 0 < diff.mean() <= mean_bound and diff.max() <= max_bound, (
        diff.max(), diff.mean())
    # Far below moving the image by one pixel: the content stays where it was.
    shifted = np.abs(np.roll(full, 1, axis=1) - full)[:, 1:]
    assert diff.mean() < 0.5 * shifted.mean(), (diff.mean(), shifted.mean())


def test_dct_scaled_decode_keeps_small_and_non_jpeg_sources_exact():
    small = encode(photo_like(400, 500, seed=3))  # 400 < 2 * 340: no scaling
    np.testing.assert_array_equal(run("decode_jpeg_and_resize(340)", small),
                                  run("decode|resize(340)", small))
    png = encode(photo_like(400, 500, seed=4), "PNG")
    np.testing.assert_array_equal(run("decode_jpeg_and_resize(100)", png),
                                  run("decode|resize(100)", png))
    exact = encode(photo_like(340, 340, seed=5))  # already the size: pixels kept
    np.testing.assert_array_equal(run("decode_jpeg_and_resize(340)", exact),
                                  run("decode", exact))


def test_paper_recipe_fused_shapes(big_jpeg):
    out = run(recipes.paper_train(64, 80, fused_decode=True), big_jpeg)
    assert out.shape == (64, 64, 3) and out.dtype == np.float32
    assert -1 <= out.min() < -0.5 and 0.5 < out.max() <= 1


def test_fused_ops_name_bad_input():
    with pytest.raises(ValueError, match="area_min"):
        run("decode_jpeg_and_inception_crop(32, area_min=0)", b"")
    with pytest.raises(KeyError, match="no 'img'"):
        run("decode_jpeg_and_resize(32, key='img')", b"")


def test_corrupt_jpeg_fails_in_the_decode_stage():
    pp = build_preprocess("decode_jpeg_and_resize(32)", default_registry(),
                          PPContext())
    assert pp.has_decode  # so the pipeline skips and counts a corrupt record
    with pytest.raises(tf.errors.InvalidArgumentError):
        pp.decode_stage({"image": tf.constant(b"\xff\xd8\xff not a jpeg"),
                         SEED_KEY: tf.constant([0, 0], tf.int64)})
