"""G-RMI pose targets, loss terms, decoding and OKS-NMS.

Coordinates: a keypoint is (y, x) normalised to its crop; output pixel (i, j)
of an H x W map has its centre at ((i + .5) / H, (j + .5) / W) of the crop, and
the disk radius R is in pixels of the input crop. With an upsampled head the map
is the crop's resolution; otherwise it is coarser, and targets are drawn at the
pixel centres of the coarse map (distances still in input-crop pixels).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax


def pixel_centres(map_hw: tuple[int, int], crop_hw: tuple[int, int]) -> jax.Array:
    """[H, W, 2] (y, x) centres of the map's pixels, in input-crop pixels."""
    (h, w), (ch, cw) = map_hw, crop_hw
    ys = (jnp.arange(h, dtype=jnp.float32) + 0.5) * (ch / h)
    xs = (jnp.arange(w, dtype=jnp.float32) + 0.5) * (cw / w)
    return jnp.stack(jnp.meshgrid(ys, xs, indexing="ij"), axis=-1)


def targets(keypoints: jax.Array, map_hw: tuple[int, int], crop_hw: tuple[int, int],
            radius: float) -> tuple[jax.Array, jax.Array, jax.Array]:
    """From keypoints [B, K, 3] (y, x normalised to the crop, visibility):
    disks [B, H, W, K] (1 within `radius` of a labelled keypoint), offsets
    [B, H, W, K, 2] (keypoint minus pixel centre, in units of radius) and
    visible [B, K]."""
    centres = pixel_centres(map_hw, crop_hw)  # [H, W, 2]
    loc = keypoints[..., :2] * jnp.asarray(crop_hw, jnp.float32)  # [B, K, 2] crop px
    visible = keypoints[..., 2] > 0
    delta = loc[:, None, None] - centres[None, :, :, None]  # [B, H, W, K, 2]
    disks = (jnp.sum(delta ** 2, -1) <= radius ** 2) & visible[:, None, None]
    return disks.astype(jnp.float32), delta / radius, visible


def loss_terms(heatmaps: jax.Array, offsets: jax.Array, keypoints: jax.Array,
               crop_hw: tuple[int, int], radius: float, huber_delta: float = 1.0
               ) -> tuple[jax.Array, jax.Array]:
    """Per-example (heatmap loss [B], offset loss [B]).

    Heatmap: sigmoid cross-entropy summed over the pixels of labelled keypoints,
    divided by K * pixels. Offset: Huber loss of (dy, dx) in units of R, summed over
    each labelled keypoint's disk and divided by the disk's pixel count, then averaged
    over the K keypoints. Unlabelled (v=0) keypoints contribute nothing.
    """
    _, h, w, k = heatmaps.shape
    disks, offset_t, visible = targets(keypoints, (h, w), crop_hw, radius)
    vis = visible.astype(jnp.float32)[:, None, None]  # [B, 1, 1, K]
    xent = optax.sigmoid_binary_cross_entropy(heatmaps, disks) * vis
    heat = xent.sum((1, 2, 3)) / (k * h * w)
    hub = optax.huber_loss(offsets, offset_t, delta=huber_delta).sum(-1) * disks
    per_kp = hub.sum((1, 2)) / jnp.maximum(disks.sum((1, 2)), 1.0)  # [B, K]
    return heat, per_kp.sum(-1) / k


def decode(heatmaps: jax.Array, offsets: jax.Array, crop_hw: tuple[int, int],
           radius: float) -> jax.Array:
    """[..., K, 3] (y, x normalised to the crop, score): the heatmap's most probable
    pixel plus its predicted offset; score = the sigmoid there."""
    *lead, h, w, k = heatmaps.shape
    flat = heatmaps.reshape(*lead, h * w, k)
    best = jnp.argmax(flat, axis=-2)  # [..., K]
    score = jax.nn.sigmoid(jnp.take_along_axis(flat, best[..., None, :], -2)[..., 0, :])
    off = jnp.take_along_axis(offsets.reshape(*lead, h * w, k, 2),
                              best[..., None, :, None], -3)[..., 0, :, :]
    centres = pixel_centres((h, w), crop_hw).reshape(h * w, 2)[best]  # [..., K, 2]
    loc = (centres + radius * off) / jnp.asarray(crop_hw, jnp.float32)
    return jnp.concatenate([loc, score[..., None]], axis=-1)


def hough_votes(heatmaps: jax.Array, offsets: jax.Array, crop_hw: tuple[int, int],
                radius: float) -> jax.Array:
    """G-RMI's voting: every pixel casts its heatmap probability at the point its offset
    names, split bilinearly over the four map pixels around it; [..., H, W, K] sums,
    divided by pi R^2 (in map pixels)."""
    *lead, h, w, k = heatmaps.shape
    n = int(np.prod(lead)) if lead else 1
    prob = jax.nn.sigmoid(heatmaps).reshape(n, h * w, k)
    sy, sx = h / crop_hw[0], w / crop_hw[1]
    scale = jnp.asarray((sy, sx), jnp.float32)
    centres = pixel_centres((h, w), crop_hw).reshape(1, h * w, 1, 2)
    target = (centres + radius * offsets.reshape(n, h * w, k, 2)) * scale - 0.5
    base = jnp.floor(target)
    frac = target - base
    base = base.astype(jnp.int32)
    votes = jnp.zeros((n, k, h, w), jnp.float32)
    bi = jnp.arange(n)[:, None, None]
    ki = jnp.arange(k)[None, None, :]
    for dy in (0, 1):
        for dx in (0, 1):
            y, x = base[..., 0] + dy, base[..., 1] + dx
            wgt = (frac[..., 0] if dy else 1 - frac[..., 0]) * \
                (frac[..., 1] if dx else 1 - frac[..., 1])
            inside = (y >= 0) & (y < h) & (x >= 0) & (x < w)
            votes = votes.at[bi, ki, jnp.clip(y, 0, h - 1), jnp.clip(x, 0, w - 1)].add(
                jnp.where(inside, wgt * prob, 0.0))
    area = np.pi * radius ** 2 * sy * sx
    return jnp.moveaxis(votes, 1, -1).reshape(*lead, h, w, k) / area


def decode_hough(heatmaps: jax.Array, offsets: jax.Array, crop_hw: tuple[int, int],
                 radius: float) -> jax.Array:
    """[..., K, 3] (y, x normalised to the crop, score): the pixel with the most votes;
    score = the heatmap's probability there."""
    *lead, h, w, k = heatmaps.shape
    votes = hough_votes(heatmaps, offsets, crop_hw, radius).reshape(*lead, h * w, k)
    best = jnp.argmax(votes, axis=-2)
    flat = heatmaps.reshape(*lead, h * w, k)
    score = jax.nn.sigmoid(jnp.take_along_axis(flat, best[..., None, :], -2)[..., 0, :])
    loc = pixel_centres((h, w), crop_hw).reshape(h * w, 2)[best]
    loc = loc / jnp.asarray(crop_hw, jnp.float32)
    return jnp.concatenate([loc, score[..., None]], axis=-1)


DECODERS = {"argmax": decode, "hough": decode_hough}


def oks_nms(keypoints: np.ndarray, scores: np.ndarray, areas: np.ndarray,
            sigmas: Sequence[float], threshold: float) -> np.ndarray:
    """Indices of the instances kept, best first: an instance whose OKS to a better
    one (all keypoints, the better one's area) exceeds `threshold` is dropped.
    keypoints [N, K, 2] (y, x) in image pixels."""
    kp = np.asarray(keypoints, np.float64)
    variances = (2.0 * np.asarray(sigmas, np.float64)) ** 2
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    keep: list[int] = []
    for i in order:
        if keep:
            d2 = ((kp[keep] - kp[i][None]) ** 2).sum(-1)  # [kept, K]
            a = np.asarray(areas, np.float64)[keep][:, None] + np.spacing(1)
            sim = np.exp(-d2 / variances / a / 2).mean(-1)
            if (sim > threshold).any():
                continue
        keep.append(int(i))
    return np.asarray(keep, np.int64)
