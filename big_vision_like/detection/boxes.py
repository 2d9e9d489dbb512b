"""Box arithmetic and the TF OD API FasterRcnnBoxCoder (boxes are ymin, xmin, ymax, xmax)."""

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp

_EPS = 1e-8  # TF OD API's faster_rcnn_box_coder guards log/divide with this.
# Detectron's guard: a predicted log-scale beyond log(1000/16) would overflow exp.
_MAX_LOG_SCALE = math.log(1000.0 / 16)


def area(b: jax.Array) -> jax.Array:
    """[..., 4] -> [...]; a box with a negative extent has area 0."""
    h = jnp.maximum(b[..., 2] - b[..., 0], 0.0)
    w = jnp.maximum(b[..., 3] - b[..., 1], 0.0)
    return h * w


def iou(a: jax.Array, b: jax.Array) -> jax.Array:
    """Pairwise IoU of a [N, 4] and b [M, 4] -> [N, M]; 0 where the union is 0."""
    a = a[:, None, :]
    b = b[None, :, :]
    ih = jnp.maximum(jnp.minimum(a[..., 2], b[..., 2]) - jnp.maximum(a[..., 0], b[..., 0]), 0.0)
    iw = jnp.maximum(jnp.minimum(a[..., 3], b[..., 3]) - jnp.maximum(a[..., 1], b[..., 1]), 0.0)
    inter = ih * iw
    union = area(a) + area(b) - inter
    safe = jnp.where(union > 0, union, 1.0)
    return jnp.where(union > 0, inter / safe, 0.0)


def _center_size(b: jax.Array) -> tuple[jax.Array, ...]:
    h = b[..., 2] - b[..., 0]
    w = b[..., 3] - b[..., 1]
    return b[..., 0] + 0.5 * h, b[..., 1] + 0.5 * w, h, w


def encode(
    boxes: jax.Array,
    anchors: jax.Array,
    scale: Sequence[float] = (10.0, 10.0, 5.0, 5.0),
) -> jax.Array:
    """FasterRcnnBoxCoder.encode: boxes relative to anchors -> [..., 4] (ty, tx, th, tw)."""
    yc, xc, h, w = _center_size(boxes)
    yca, xca, ha, wa = _center_size(anchors)
    ha, wa, h, w = ha + _EPS, wa + _EPS, h + _EPS, w + _EPS
    ty = (yc - yca) / ha * scale[0]
    tx = (xc - xca) / wa * scale[1]
    th = jnp.log(h / ha) * scale[2]
    tw = jnp.log(w / wa) * scale[3]
    return jnp.stack([ty, tx, th, tw], axis=-1)


def decode(
    codes: jax.Array,
    anchors: jax.Array,
    scale: Sequence[float] = (10.0, 10.0, 5.0, 5.0),
) -> jax.Array:
    """Inverse of `encode`: codes [..., 4] and anchors [..., 4] -> boxes [..., 4]."""
    # TF's decode uses the anchor sizes without the epsilon.
    yca, xca, ha, wa = _center_size(anchors)
    ty = codes[..., 0] / scale[0]
    tx = codes[..., 1] / scale[1]
    th = jnp.minimum(codes[..., 2] / scale[2], _MAX_LOG_SCALE)
    tw = jnp.minimum(codes[..., 3] / scale[3], _MAX_LOG_SCALE)
    h = jnp.exp(th) * ha
    w = jnp.exp(tw) * wa
    yc = ty * ha + yca
    xc = tx * wa + xca
    return jnp.stack([yc - 0.5 * h, xc - 0.5 * w, yc + 0.5 * h, xc + 0.5 * w], axis=-1)


def clip(b: jax.Array, hw: jax.Array) -> jax.Array:
    """Clips boxes [..., 4] to [0, height] x [0, width]; hw = (height, width)."""
    hw = jnp.asarray(hw, b.dtype)
    hi = jnp.stack([hw[0], hw[1], hw[0], hw[1]])
    return jnp.clip(b, 0.0, hi)
