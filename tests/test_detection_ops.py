"""Detection ops against independent references (float64 NumPy, pure Python, TF)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from big_vision_like.detection import anchors, boxes, nms, roi_align, sampling


def _random_boxes(rng: np.random.Generator, n: int, lo: float = 0.0, hi: float = 100.0,
                  min_size: float = 1.0) -> np.ndarray:
    y = rng.uniform(lo, hi, (n, 2))
    x = rng.uniform(lo, hi, (n, 2))
    y.sort(axis=1)
    x.sort(axis=1)
    y[:, 1] += min_size
    x[:, 1] += min_size
    return np.stack([y[:, 0], x[:, 0], y[:, 1], x[:, 1]], axis=1).astype(np.float32)


def _np_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    out = np.zeros((len(a), len(b)))
    for i, p in enumerate(a):
        for j, q in enumerate(b):
            ih = max(0.0, min(p[2], q[2]) - max(p[0], q[0]))
            iw = max(0.0, min(p[3], q[3]) - max(p[1], q[1]))
            ap = max(0.0, p[2] - p[0]) * max(0.0, p[3] - p[1])
            aq = max(0.0, q[2] - q[0]) * max(0.0, q[3] - q[1])
            union = ap + aq - ih * iw
            out[i, j] = ih * iw / union if union > 0 else 0.0
    return out


# ---------------------------------------------------------------- boxes


def test_area_counts_negative_extents_as_zero():
    b = jnp.array([[0.0, 0.0, 2.0, 3.0], [2.0, 0.0, 1.0, 3.0], [0.0, 5.0, 2.0, 1.0]])
    np.testing.assert_allclose(boxes.area(b), [6.0, 0.0, 0.0])
    assert boxes.area(b.reshape(1, 3, 4)).shape == (1, 3)


def test_iou_matches_numpy_incl_zero_area_and_disjoint():
    rng = np.random.default_rng(0)
    a = _random_boxes(rng, 20)
    b = np.concatenate([
        _random_boxes(rng, 15),
        [[5, 5, 5, 5], [5, 5, 5, 9], [200, 200, 210, 210], [0, 0, 0, 0]],  # zero-area, disjoint
        a[:3],  # identical boxes: IoU 1
    ]).astype(np.float32)
    a = np.concatenate([a, [[0, 0, 0, 0], [5, 5, 5, 5]]]).astype(np.float32)
    got = np.asarray(jax.jit(boxes.iou)(a, b))
    want = _np_iou(a, b)
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert got[0, 19] == pytest.approx(1.0)  # a[0] vs its copy in b
    assert np.all(got[-2:, 15:19] == 0.0) and np.all(np.isfinite(got))


def test_encode_formula_and_round_trip():
    rng = np.random.default_rng(1)
    gt = _random_boxes(rng, 200)
    anc = _random_boxes(rng, 200)
    codes = np.asarray(jax.jit(boxes.encode)(gt, anc))

    g, a = gt.astype(np.float64), anc.astype(np.float64)
    h, w = g[:, 2] - g[:, 0] + 1e-8, g[:, 3] - g[:, 1] + 1e-8
    ha, wa = a[:, 2] - a[:, 0] + 1e-8, a[:, 3] - a[:, 1] + 1e-8
    yc, xc = (g[:, 0] + g[:, 2]) / 2, (g[:, 1] + g[:, 3]) / 2
    yca, xca = (a[:, 0] + a[:, 2]) / 2, (a[:, 1] + a[:, 3]) / 2
    want = np.stack([(yc - yca) / ha * 10, (xc - xca) / wa * 10,
                     np.log(h / ha) * 5, np.log(w / wa) * 5], axis=1)
    np.testing.assert_allclose(codes, want, rtol=1e-4, atol=1e-4)

    back = np.asarray(jax.jit(boxes.decode)(codes, anc))
    np.testing.assert_allclose(back, gt, atol=2e-3)
    # Custom scales and leading batch dims round-trip too.
    scale = (1.0, 2.0, 3.0, 4.0)
    c2 = boxes.encode(gt.reshape(10, 20, 4), anc.reshape(10, 20, 4), scale=scale)
    np.testing.assert_allclose(boxes.decode(c2, anc.reshape(10, 20, 4), scale=scale),
                               gt.reshape(10, 20, 4), atol=2e-3)


def test_decode_clamps_wild_log_scales():
    anc = jnp.array([[0.0, 0.0, 16.0, 16.0]])
    out = boxes.decode(jnp.array([[0.0, 0.0, 1e4, 1e4]]), anc)
    assert np.all(np.isfinite(np.asarray(out)))
    np.testing.assert_allclose(out[0, 2] - out[0, 0], 1000.0, rtol=1e-4)


def test_clip():
    b = jnp.array([[-5.0, 3.0, 50.0, 120.0], [10.0, -1.0, 20.0, 5.0]])
    np.testing.assert_allclose(boxes.clip(b, jnp.array([40.0, 100.0])),
                               [[0, 3, 40, 100], [10, 0, 20, 5]])


# ---------------------------------------------------------------- nms


def _py_nms(b: np.ndarray, s: np.ndarray, thr: float, max_out: int,
            score_thr: float = -np.inf) -> list[int]:
    order = sorted(range(len(s)), key=lambda i: (-s[i], i))
    iou = _np_iou(b, b)
    kept: list[int] = []
    for i in order:
        if len(kept) == max_out:
            break
        if s[i] < score_thr:
            continue
        if all(iou[i, k] <= thr for k in kept):
            kept.append(i)
    return kept


def _nms_case(seed: int, n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    b = _random_boxes(rng, n, hi=60.0, min_size=5.0)
    b[n // 2: n // 2 + 6] = b[:6]  # duplicate boxes
    s = rng.integers(0, 8, n).astype(np.float32) / 8  # many tied scores
    return b, s


@pytest.mark.parametrize("thr", [0.0, 0.3, 0.5, 0.7, 1.0])
@pytest.mark.parametrize("max_out", [3, 100])
def test_nms_matches_greedy_reference(thr, max_out):
    f = jax.jit(nms.nms, static_argnums=(2, 3, 4))
    kept_counts = []
    for seed in range(3):
        b, s = _nms_case(seed)
        for score_thr in (-np.inf, 0.375):  # 3/8 is a score: kept when equal
            want = _py_nms(b, s, thr, max_out, score_thr)
            kept_counts.append(len(_py_nms(b, s, thr, 10**6, score_thr)))
            idx, valid = f(b, s, thr, max_out, score_thr)
            idx, valid = np.asarray(idx), np.asarray(valid)
            assert idx.shape == (max_out,) and idx.dtype == np.int32
            assert list(idx[valid]) == want
            assert np.all(idx[~valid] == 0) and valid.sum() == len(want)
    # Both regimes are exercised: max_out 3 truncates, 100 never does.
    assert max(kept_counts) > 3 and max(kept_counts) < 100


def test_nms_by_tiles_is_the_greedy_result_for_any_tile_size():
    """A chain of boxes, each overlapping the next, by falling score: greedy NMS
    keeps every other one, so each box depends on all before it, across tile
    borders. Random boxes with ties too; tiles of 1 box up to all of them."""
    x = np.arange(40, dtype=np.float32) * 4.0
    chain = np.stack([np.zeros_like(x), x, np.full_like(x, 10.0), x + 10.0], axis=1)
    chain_scores = np.linspace(1.0, 0.1, 40, dtype=np.float32)
    assert _py_nms(chain, chain_scores, 0.3, 100) == list(range(0, 40, 2))
    cases = [(chain, chain_scores), *(_nms_case(seed) for seed in range(3))]
    for tile in (1, 5, 16, 1000):
        f = jax.jit(lambda b, s, tile=tile: nms.nms(b, s, 0.3, 100, tile=tile))
        for b, s in cases:
            idx, valid = f(b, s)
            assert list(np.asarray(idx)[np.asarray(valid)]) == _py_nms(b, s, 0.3, 100), tile


def test_nms_under_vmap():
    cases = [_nms_case(seed) for seed in range(4)]
    b = np.stack([c[0] for c in cases])
    s = np.stack([c[1] for c in cases])
    idx, valid = jax.jit(jax.vmap(lambda b, s: nms.nms(b, s, 0.4, 20)))(b, s)
    for i in range(4):
        assert list(np.asarray(idx[i])[np.asarray(valid[i])]) == _py_nms(b[i], s[i], 0.4, 20)


def _np_multiclass_nms(b, s, thr, per_class, total, score_thr):
    dets = []
    for c in range(s.shape[1]):
        for rank, i in enumerate(_py_nms(b[:, c], s[:, c], thr, per_class, score_thr)):
            dets.append((-s[i, c], c, rank, i))
    dets.sort()
    return [(c, i, -neg) for neg, c, _, i in dets[:total]]


@pytest.mark.parametrize("total", [5, 40])
def test_multiclass_nms_matches_numpy_composition(total):
    rng = np.random.default_rng(3)
    n, c = 30, 3
    b = np.stack([_random_boxes(rng, n, hi=40.0, min_size=5.0) for _ in range(c)], axis=1)
    s = (rng.integers(0, 10, (n, c)) / 10).astype(np.float32)
    out = jax.jit(nms.multiclass_nms, static_argnums=(2, 3, 4, 5))(b, s, 0.5, 8, total, 0.15)
    want = _np_multiclass_nms(b, s, 0.5, 8, total, 0.15)
    valid = np.asarray(out["valid"])
    assert valid.shape == (total,) and valid.sum() == len(want)
    np.testing.assert_array_equal(np.asarray(out["classes"])[valid], [w[0] for w in want])
    np.testing.assert_allclose(np.asarray(out["scores"])[valid], [w[2] for w in want])
    np.testing.assert_allclose(np.asarray(out["boxes"])[valid],
                               np.stack([b[i, c] for c, i, _ in want]))
    assert np.all(np.asarray(out["scores"])[~valid] == 0)
    if total == 40:
        assert not valid.all()  # 3 classes x 8 < 40: padding slots exercised


# ---------------------------------------------------------------- crop_and_resize


def _np_crop_and_resize(img: np.ndarray, bx: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    img = img.astype(np.float64)
    hgt, wid = img.shape[:2]
    out = np.zeros((len(bx), *size, img.shape[2]))

    def coords(lo, hi, full, n):
        if n == 1:
            return [0.5 * (lo + hi) * (full - 1)]
        return [lo * (full - 1) + i * (hi - lo) * (full - 1) / (n - 1) for i in range(n)]

    for r, (y1, x1, y2, x2) in enumerate(bx.astype(np.float64)):
        for i, y in enumerate(coords(y1, y2, hgt, size[0])):
            for j, x in enumerate(coords(x1, x2, wid, size[1])):
                if not (0 <= y <= hgt - 1 and 0 <= x <= wid - 1):
                    continue
                y0, x0 = math.floor(y), math.floor(x)
                y1i, x1i = min(y0 + 1, hgt - 1), min(x0 + 1, wid - 1)
                dy, dx = y - y0, x - x0
                out[r, i, j] = ((1 - dy) * (1 - dx) * img[y0, x0] + (1 - dy) * dx * img[y0, x1i]
                                + dy * (1 - dx) * img[y1i, x0] + dy * dx * img[y1i, x1i])
    return out


def _crop_case() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    img = rng.normal(size=(9, 13, 3)).astype(np.float32)
    bx = rng.uniform(0.0, 1.0, (12, 4))
    bx = np.concatenate([
        bx,
        rng.uniform(-0.4, 1.4, (8, 4)),  # partly outside [0, 1], some flipped
        [[0.6, 0.7, 0.1, 0.2],  # flipped on both axes
         [0.0, 0.0, 1.0, 1.0],  # the whole map
         [0.3, 0.3, 0.3, 0.3],  # degenerate
         [1.2, -0.5, 1.5, -0.2]],  # entirely outside
    ]).astype(np.float32)
    return img, bx


@pytest.mark.parametrize("size", [(7, 5), (1, 1), (1, 4)])
def test_crop_and_resize_matches_numpy_and_tf(size):
    import tensorflow as tf

    img, bx = _crop_case()
    got = np.asarray(jax.jit(roi_align.crop_and_resize, static_argnums=2)(img, bx, size))
    assert got.shape == (len(bx), *size, 3)
    np.testing.assert_allclose(got, _np_crop_and_resize(img, bx, size), atol=1e-5)
    want_tf = tf.image.crop_and_resize(img[None], bx, tf.zeros(len(bx), tf.int32), size).numpy()
    np.testing.assert_allclose(got, want_tf, atol=1e-5)
    assert np.all(got[-1] == 0)  # the box outside the map is extrapolation (0)


def test_crop_and_resize_batched_by_vmap_and_grads_reach_features():
    img, bx = _crop_case()
    imgs = np.stack([img, -2 * img])
    f = jax.jit(jax.vmap(lambda im, b: roi_align.crop_and_resize(im, b, (4, 4))))
    got = np.asarray(f(imgs, np.stack([bx, bx[::-1]])))
    np.testing.assert_allclose(got[1], _np_crop_and_resize(-2 * img, bx[::-1], (4, 4)), atol=1e-5)

    sq = lambda im: jnp.sum(roi_align.crop_and_resize(im, bx[:12], (4, 4)) ** 2)
    grad = jax.jit(jax.grad(sq))(jnp.asarray(img))
    assert np.all(np.isfinite(grad)) and np.abs(np.asarray(grad)).sum() > 0
    # Gradient of a linear function of the crop is the bilinear weight sum: check one entry.
    lin = jax.jit(jax.grad(lambda im: jnp.sum(roi_align.crop_and_resize(im, bx[:1], (1, 1)))))(
        jnp.asarray(img))
    np.testing.assert_allclose(np.asarray(lin).sum(), 3.0, rtol=1e-5)  # weights sum to 1 per C


# ---------------------------------------------------------------- anchors


def test_grid_anchors_order_centres_and_sizes():
    scales, ratios = (0.5, 1.0, 2.0), (0.5, 1.0, 2.0, 4.0)
    a = anchors.grid_anchors((3, 5), 16, 256.0, scales, ratios)
    assert a.shape == (3 * 5 * 12, 4) and a.dtype == np.float32
    a = a.reshape(3, 5, 3, 4, 4).astype(np.float64)
    cy, cx = (a[..., 0] + a[..., 2]) / 2, (a[..., 1] + a[..., 3]) / 2
    np.testing.assert_allclose(cy, np.broadcast_to((np.arange(3) + 0.5)[:, None, None, None] * 16,
                                                   cy.shape), atol=1e-3)
    np.testing.assert_allclose(cx, np.broadcast_to((np.arange(5) + 0.5)[None, :, None, None] * 16,
                                                   cx.shape), atol=1e-3)
    h, w = a[..., 2] - a[..., 0], a[..., 3] - a[..., 1]
    for si, sc in enumerate(scales):
        for ri, r in enumerate(ratios):
            np.testing.assert_allclose(h[..., si, ri], 256 * sc / math.sqrt(r), rtol=1e-5)
            np.testing.assert_allclose(w[..., si, ri], 256 * sc * math.sqrt(r), rtol=1e-5)
            np.testing.assert_allclose(w[..., si, ri] / h[..., si, ri], r, rtol=1e-5)
    with pytest.raises(ValueError, match="at least one scale"):
        anchors.grid_anchors((3, 5), 16, 256.0, (), ratios)


# ---------------------------------------------------------------- match / sample


def test_match_thresholds_force_match_and_padded_gt():
    iou = np.array([
        [0.8, 0.55, 0.3, 0.1, 0.0, 0.2],
        [0.1, 0.6, 0.45, 0.05, 0.0, 0.25],
        [0.9, 0.9, 0.9, 0.9, 0.9, 0.9],  # padding row: must be ignored
    ], np.float32)
    valid = np.array([True, True, False])
    f = jax.jit(sampling.match, static_argnums=(2, 3, 4))
    gt, lab = f(iou, valid, 0.5, 0.3, False)
    np.testing.assert_array_equal(lab, [1, 1, -1, 0, 0, 0])
    np.testing.assert_array_equal(gt, [0, 1, 0, 0, 0, 0])
    # Only gt 1's best (candidate 1) is already positive; gt 0's best is 0. Raise thresholds so
    # forcing matters: nothing reaches 0.95, yet each valid gt keeps its best candidate.
    gt, lab = f(iou, valid, 0.95, 0.3, True)
    np.testing.assert_array_equal(lab, [1, 1, -1, 0, 0, 0])
    np.testing.assert_array_equal(gt, [0, 1, 0, 0, 0, 0])
    gt, lab = f(iou, valid, 0.95, 0.3, False)
    np.testing.assert_array_equal(lab, [-1, -1, -1, 0, 0, 0])
    # Two gts with the same best candidate: the lower gt index wins (TF).
    gt, lab = f(np.array([[0.2, 0.1], [0.25, 0.0]], np.float32), np.array([True, True]),
                0.5, 0.15, True)
    np.testing.assert_array_equal(lab, [1, 0])
    np.testing.assert_array_equal(gt, [0, 0])
    # A gt overlapping nothing is not forced onto a zero-IoU candidate.
    gt, lab = f(np.array([[0.0, 0.0]], np.float32), np.array([True]), 0.5, 0.3, True)
    np.testing.assert_array_equal(lab, [0, 0])
    # No valid gt: all negative, even with force_match and a high padded IoU.
    gt, lab = f(iou, np.zeros(3, bool), 0.5, 0.3, True)
    np.testing.assert_array_equal(lab, np.zeros(6))
    np.testing.assert_array_equal(gt, np.zeros(6))


def test_match_against_numpy_on_random_iou():
    rng = np.random.default_rng(5)
    iou = rng.uniform(0, 1, (7, 50)).astype(np.float32)
    valid = np.array([1, 1, 0, 1, 0, 1, 1], bool)
    gt, lab = sampling.match(jnp.asarray(iou), jnp.asarray(valid), 0.7, 0.3, True)
    m = np.where(valid[:, None], iou, -1)
    want_lab = np.where(m.max(0) >= 0.7, 1, np.where(m.max(0) < 0.3, 0, -1))
    want_gt = m.argmax(0)
    for g in np.flatnonzero(valid):
        n = iou[g].argmax()
        if all(iou[h].argmax() != n for h in np.flatnonzero(valid) if h < g):
            want_lab[n], want_gt[n] = 1, g
    np.testing.assert_array_equal(lab, want_lab)
    np.testing.assert_array_equal(gt, np.where(want_lab == 1, want_gt, 0))


@pytest.mark.parametrize("n_pos,n_neg,batch,frac", [(40, 200, 64, 0.25), (5, 200, 64, 0.25),
                                                    (40, 10, 64, 0.5), (3, 4, 256, 0.5)])
def test_balanced_sample_counts_and_never_ignored(n_pos, n_neg, batch, frac):
    n_ign = 30
    labels = np.array([1] * n_pos + [0] * n_neg + [-1] * n_ign, np.int32)
    labels = labels[np.random.default_rng(6).permutation(len(labels))]
    f = jax.jit(jax.vmap(lambda k: sampling.balanced_sample(jnp.asarray(labels), k, batch, frac)))
    sampled = np.asarray(f(jax.random.split(jax.random.key(0), 400)))
    want_pos = min(n_pos, math.floor(batch * frac))
    want_neg = min(n_neg, batch - want_pos)
    np.testing.assert_array_equal(sampled[:, labels == 1].sum(1), want_pos)
    np.testing.assert_array_equal(sampled[:, labels == 0].sum(1), want_neg)
    assert not sampled[:, labels == -1].any()
    # Uniform: each positive (negative) is picked with probability want/n; 400 draws.
    for cls, want, n in ((1, want_pos, n_pos), (0, want_neg, n_neg)):
        freq = sampled[:, labels == cls].mean(0)
        p = want / n
        tol = 5 * math.sqrt(p * (1 - p) / 400) + 1e-9
        assert np.all(np.abs(freq - p) <= tol), (cls, freq.min(), freq.max(), p)


def test_multiclass_nms_and_match_under_vmap_equal_per_image():
    rng = np.random.default_rng(7)
    b = np.stack([_random_boxes(rng, 20, hi=40.0, min_size=5.0) for _ in range(4)]).reshape(
        2, 10, 4, 4)
    s = (rng.integers(0, 10, (2, 10, 4)) / 10).astype(np.float32)
    batched = jax.jit(jax.vmap(lambda b, s: nms.multiclass_nms(b, s, 0.5, 3, 6)))(b, s)
    iou = rng.uniform(0, 1, (2, 3, 9)).astype(np.float32)
    valid = np.array([[True, False, True], [False, False, False]])
    gt_b, lab_b = jax.vmap(lambda i, v: sampling.match(i, v, 0.6, 0.3, True))(iou, valid)
    one_nms = jax.jit(lambda b, s: nms.multiclass_nms(b, s, 0.5, 3, 6))
    one_match = jax.jit(lambda i, v: sampling.match(i, v, 0.6, 0.3, True))
    for i in range(2):
        single = one_nms(b[i], s[i])
        for k in single:
            np.testing.assert_array_equal(batched[k][i], single[k])
        gt, lab = one_match(iou[i], valid[i])
        np.testing.assert_array_equal(gt_b[i], gt)
        np.testing.assert_array_equal(lab_b[i], lab)
    assert np.all(np.asarray(lab_b[1]) == 0)  # the image without gt is all negative
