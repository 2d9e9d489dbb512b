"""Procedural rendering of synthetic JFT-shaped examples.

Every example is a pure function of (generation parameters, split, index), so
generation parallelises over processes and is reproducible bit for bit. Pure
NumPy + PIL: worker processes import this without TensorFlow.
"""

from __future__ import annotations

import colorsys
import dataclasses
import io
import math

import numpy as np
from PIL import Image

from input_pipeline.sources.synthetic_jft import taxonomy as tax

NUM_KEYPOINTS = 5
_SPLIT_STREAM = {"train": 0, "fasteval": 1, "test": 2}


@dataclasses.dataclass(frozen=True)
class GenerationParams:
    """What fixes the dataset's content; see SyntheticJftConfig for meaning."""

    image_size: int
    num_leaves: int
    noise_rate: float
    zipf_exponent: float
    mean_extra_objects: float
    missing_label_rate: float
    seed: int


# --- Shapes: boolean masks over object-local coordinates (u, v) in [-1, 1]. ---

def _polar(u, v):
    return np.hypot(u, v), np.arctan2(v, u)


def _shape_mask(name: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    if name.startswith("polygon"):
        n = int(name[len("polygon"):])
        r, th = _polar(u, v)
        sector = np.mod(th, 2 * math.pi / n) - math.pi / n
        return r * np.cos(sector) <= math.cos(math.pi / n)
    if name.startswith("star"):
        n = int(name[len("star"):])
        r, th = _polar(u, v)
        phase = np.abs(np.mod(th * n / (2 * math.pi), 1.0) - 0.5) * 2  # 1 at tips
        return r <= 0.42 + 0.58 * phase
    r2 = u * u + v * v
    if name == "circle":
        return r2 <= 1.0
    if name == "ellipse":
        return u * u + (v / 0.5) ** 2 <= 1.0
    if name == "ring":
        return (r2 <= 1.0) & (r2 >= 0.36)
    if name == "halfdisc":
        return (r2 <= 1.0) & (v >= -0.1)
    if name == "crescent":
        return (r2 <= 1.0) & ((u - 0.45) ** 2 + v * v >= 0.7)
    hbar = (np.abs(v) <= 0.3) & (np.abs(u) <= 1.0)
    vbar = (np.abs(u) <= 0.3) & (np.abs(v) <= 1.0)
    if name == "bar":
        return hbar
    if name == "plus":
        return hbar | vbar
    if name == "ell":
        return ((np.abs(u + 0.7) <= 0.3) & (np.abs(v) <= 1.0)) | (
            (np.abs(v - 0.7) <= 0.3) & (np.abs(u) <= 1.0))
    if name == "tee":
        return ((np.abs(v + 0.7) <= 0.3) & (np.abs(u) <= 1.0)) | vbar
    if name == "aitch":
        return (np.abs(u) <= 1.0) & (np.abs(v) <= 1.0) & (
            (np.abs(u) >= 0.55) | (np.abs(v) <= 0.22))
    raise ValueError(f"unknown shape {name!r}")


# --- Textures: a {0, 1} pattern over object-local coordinates. ---

def _texture_pattern(t: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Texture t of an open-ended family; low ids are the most distinct."""
    if t == 0:
        return np.ones_like(u)
    kind, level = (t - 1) % 6, (t - 1) // 6
    freq = 2.5 + 1.5 * (level % 3)
    angle = math.pi * ((level // 3) * 0.125 + 0.25 * ((t - 1) % 2))
    a = u * math.cos(angle) + v * math.sin(angle)
    b = -u * math.sin(angle) + v * math.cos(angle)
    if kind in (0, 1):  # stripes at two orientations
        return (np.sin(freq * math.pi * a) > 0).astype(u.dtype)
    if kind == 2:  # checker
        return ((np.sin(freq * math.pi * a) > 0) ^ (np.sin(freq * math.pi * b) > 0)
                ).astype(u.dtype)
    if kind == 3:  # dots
        d = np.cos(freq * math.pi * a) * np.cos(freq * math.pi * b)
        return (d < 0.35).astype(u.dtype)
    if kind == 4:  # concentric rings
        return (np.sin(freq * math.pi * np.hypot(u, v)) > 0).astype(u.dtype)
    return np.clip(0.5 + 0.5 * a, 0.0, 1.0)  # linear gradient


def colour_rgb(c: int, num_colours: int) -> np.ndarray:
    """Colour c of num_colours: hues around the wheel, alternating brightness."""
    hue = c / num_colours
    sat = 0.9 if c % 2 == 0 else 0.6
    val = 0.95 if (c // 2) % 2 == 0 else 0.7
    return np.array(colorsys.hsv_to_rgb(hue, sat, val), np.float32)


# --- Label sampling. ---

def leaf_frequencies(params: GenerationParams) -> np.ndarray:
    """Zipf-like probability of each leaf; rank order is a seeded permutation."""
    n = params.num_leaves
    ranks = np.random.default_rng([params.seed, 99]).permutation(n) + 1
    w = ranks.astype(np.float64) ** -params.zipf_exponent
    return w / w.sum()


def _observed_labels(rng: np.random.Generator, taxonomy: tax.Taxonomy,
                     cdf: np.ndarray, leaves: list[int],
                     params: GenerationParams) -> list[int]:
    """Noisy, non-exhaustive leaf labels of the training split (leaf indices)."""
    labelled = [leaf for k, leaf in enumerate(leaves)
                if k == 0 or rng.random() >= params.missing_label_rate]
    out = []
    for leaf in labelled:
        if rng.random() < params.noise_rate:
            kind = rng.random()
            if kind < 0.4:  # A sibling: same shape and colour, other texture.
                sib = np.flatnonzero(
                    (taxonomy.leaf_shape == taxonomy.leaf_shape[leaf])
                    & (taxonomy.leaf_colour == taxonomy.leaf_colour[leaf]))
                sib = sib[sib != leaf]
                if len(sib) == 0:
                    sib = np.array([taxonomy.lookalike[leaf]])
                leaf = int(rng.choice(sib))
            elif kind < 0.7:  # 'tortoise' vs 'tortoise-shell glasses'.
                leaf = int(taxonomy.lookalike[leaf])
            else:  # An unrelated label, as common as labels are.
                leaf = int(np.searchsorted(cdf, rng.random(), side="right"))
                leaf = min(leaf, len(cdf) - 1)
        out.append(leaf)
    return sorted(set(out))


# --- Rendering. ---

def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    c0, c1 = rng.uniform(0.25, 0.75, 3), rng.uniform(0.25, 0.75, 3)
    mix = (np.cos(rng.uniform(0, math.pi)) * xx + np.sin(rng.uniform(0, math.pi)) * yy)
    mix = (mix - mix.min()) / (np.ptp(mix) + 1e-6)
    grey = np.mean([c0, c1], axis=0)
    c0 = 0.6 * grey + 0.4 * c0  # low saturation, so objects stand out
    c1 = 0.6 * grey + 0.4 * c1
    img = c0 + mix[..., None] * (c1 - c0)
    return img + rng.normal(0, 0.03, img.shape).astype(np.float32)


def render_example(params: GenerationParams, taxonomy: tax.Taxonomy,
                   split: str, index: int) -> dict:
    """Renders example `index` of `split` into the builder's feature dict."""
    rng = np.random.default_rng([params.seed, _SPLIT_STREAM[split], index])
    size = params.image_size
    cdf = np.cumsum(leaf_frequencies(params))
    num_objects = 1 + min(3, int(rng.poisson(params.mean_extra_objects)))
    leaves = [min(int(np.searchsorted(cdf, rng.random(), side="right")),
                  len(cdf) - 1) for _ in range(num_objects)]

    img = _background(rng, size)
    instance = np.zeros((size, size), np.uint8)  # object index + 1, 0 = none
    keypoints = np.zeros((num_objects, NUM_KEYPOINTS, 3), np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    for k, leaf in enumerate(leaves):
        radius = rng.uniform(0.16, 0.32) * size
        cy, cx = rng.uniform(radius * 0.6, size - radius * 0.6, 2)
        rot = rng.uniform(0, 2 * math.pi)
        y0, y1 = max(0, int(cy - radius)), min(size, int(cy + radius) + 2)
        x0, x1 = max(0, int(cx - radius)), min(size, int(cx + radius) + 2)
        dy, dx = (yy[y0:y1, x0:x1] - cy) / radius, (xx[y0:y1, x0:x1] - cx) / radius
        u = dx * math.cos(rot) + dy * math.sin(rot)
        v = -dx * math.sin(rot) + dy * math.cos(rot)
        mask = _shape_mask(tax.SHAPES[taxonomy.leaf_shape[leaf]], u, v)
        pattern = _texture_pattern(int(taxonomy.leaf_texture[leaf]), u, v)
        colour = colour_rgb(int(taxonomy.leaf_colour[leaf]), taxonomy.num_colours)
        shade = colour * (0.45 + 0.55 * pattern[..., None])
        window = img[y0:y1, x0:x1]
        window[mask] = shade[mask]
        instance[y0:y1, x0:x1][mask] = k + 1
        # Keypoints: centre and four points fixed to the object's frame.
        for j, angle in enumerate([None, 0.0, 0.5, 1.0, 1.5]):
            if angle is None:
                py, px = cy, cx
            else:
                a = rot + angle * math.pi
                py, px = cy + 0.8 * radius * math.sin(a), cx + 0.8 * radius * math.cos(a)
            keypoints[k, j] = (py / size, px / size, 0.0)

    boxes = np.zeros((num_objects, 4), np.float32)
    visible = np.zeros(num_objects, bool)
    for k in range(num_objects):
        ys, xs = np.nonzero(instance == k + 1)
        if len(ys):
            visible[k] = True
            boxes[k] = (ys.min() / size, xs.min() / size,
                        (ys.max() + 1) / size, (xs.max() + 1) / size)
        for j in range(NUM_KEYPOINTS):  # a keypoint is visible if unoccluded
            py = min(size - 1, max(0, int(keypoints[k, j, 0] * size)))
            px = min(size - 1, max(0, int(keypoints[k, j, 1] * size)))
            keypoints[k, j, 2] = float(instance[py, px] == k + 1)

    # Fully occluded objects are not in the image: they get no label or box.
    kept = [k for k in range(num_objects) if visible[k]]
    true_leaves = [leaves[k] for k in kept]
    if split == "train":
        label_leaves = _observed_labels(rng, taxonomy, cdf, true_leaves, params)
    else:
        label_leaves = sorted(set(true_leaves))
    remap = np.zeros(num_objects + 1, np.uint8)
    remap[[k + 1 for k in kept]] = np.arange(1, len(kept) + 1)
    instance = remap[instance]

    pixels = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
    return {
        "image": _encode(pixels, "JPEG"),
        "image_id": index,
        "labels": [int(taxonomy.leaf_ids[leaf]) for leaf in label_leaves],
        "objects": {
            "label": [int(taxonomy.leaf_ids[leaf]) for leaf in true_leaves],
            "bbox": boxes[kept],
            "keypoints": keypoints[kept],
        },
        "segmentation": _encode(instance[..., None], "PNG"),
    }


def _encode(pixels: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    if pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    kwargs = {"quality": 90} if fmt == "JPEG" else {"compress_level": 1}
    Image.fromarray(pixels).save(buf, format=fmt, **kwargs)
    return buf.getvalue()
