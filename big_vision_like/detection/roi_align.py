"""`tf.image.crop_and_resize` in JAX: bilinear crops by gathering (vmappable)."""

import jax
import jax.numpy as jnp


def _sample_coords(lo: jax.Array, hi: jax.Array, size: int, crop: int) -> jax.Array:
    """Sample positions along one axis, in the same float32 op order as TF's kernel."""
    if crop > 1:
        scale = (hi - lo) * (size - 1) / (crop - 1)
        return lo * (size - 1) + jnp.arange(crop, dtype=lo.dtype) * scale
    return (0.5 * (lo + hi) * (size - 1))[None]


def _crop_one(features: jax.Array, box: jax.Array, crop_size: tuple[int, int]) -> jax.Array:
    height, width = features.shape[:2]
    ys = _sample_coords(box[0], box[2], height, crop_size[0])
    xs = _sample_coords(box[1], box[3], width, crop_size[1])
    y_in = (ys >= 0) & (ys <= height - 1)
    x_in = (xs >= 0) & (xs <= width - 1)
    y0f, x0f = jnp.floor(ys), jnp.floor(xs)
    y_lerp = (ys - y0f)[:, None, None].astype(features.dtype)
    x_lerp = (xs - x0f)[None, :, None].astype(features.dtype)
    # Out-of-range samples are zeroed below; clipping only keeps the gathers in bounds.
    y0 = jnp.clip(y0f.astype(jnp.int32), 0, height - 1)
    x0 = jnp.clip(x0f.astype(jnp.int32), 0, width - 1)
    y1 = jnp.clip(jnp.ceil(ys).astype(jnp.int32), 0, height - 1)
    x1 = jnp.clip(jnp.ceil(xs).astype(jnp.int32), 0, width - 1)
    tl = features[y0[:, None], x0[None, :]]
    tr = features[y0[:, None], x1[None, :]]
    bl = features[y1[:, None], x0[None, :]]
    br = features[y1[:, None], x1[None, :]]
    top = tl + (tr - tl) * x_lerp
    bottom = bl + (br - bl) * x_lerp
    out = top + (bottom - top) * y_lerp
    inside = (y_in[:, None] & x_in[None, :])[..., None]
    return jnp.where(inside, out, jnp.zeros((), out.dtype))


def crop_and_resize(
    features: jax.Array, boxes: jax.Array, crop_size: tuple[int, int]
) -> jax.Array:
    """Bilinear crops of features [H, W, C] at boxes [R, 4] -> [R, h, w, C].

    Exactly `tf.image.crop_and_resize` for one image (extrapolation value 0):
    box coordinates are normalised so that 0 and 1 are the centres of the first
    and last pixels; crop pixel i samples y1*(H-1) + i*(y2-y1)*(H-1)/(h-1) (the
    box centre when h == 1). Flipped boxes (y1 > y2) give flipped crops.
    Gradients flow to `features`; stop them on `boxes` in the caller.
    Vmap over a batch of feature maps for batched use.
    """
    if features.ndim != 3 or boxes.ndim != 2 or boxes.shape[-1] != 4:
        raise ValueError(
            f"crop_and_resize wants features [H, W, C] and boxes [R, 4], got "
            f"{features.shape} and {boxes.shape}; vmap over the batch axis.")
    crop_size = (int(crop_size[0]), int(crop_size[1]))
    boxes = boxes.astype(jnp.float32)
    return jax.vmap(_crop_one, in_axes=(None, 0, None))(features, boxes, crop_size)
