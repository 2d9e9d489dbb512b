"""Real photographs at typical collection sizes, as JPEG bytes and as a TFDS dataset.

The photos are scikit-image's sample images that ship inside its wheel
(`skimage.data.data_dir`); they are read from that folder by file name, never
through `skimage.data`'s fetchers, so nothing is downloaded. Each is resized to
cover one of a fixed mix of sizes (500x375 up to 1600x1200, one portrait),
cropped at an offset that varies with the image index, and re-encoded as
JPEG quality 90 (PIL, its default 4:2:0 chroma subsampling).

The sources are 300-1000 px, so the larger sizes are upscaled: smoother than a
camera's 1600x1200 and so fewer bytes per pixel, which makes entropy decoding
a little cheaper than on camera originals. `describe` reports bits per pixel so
a reader can compare with their own collection.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence

import numpy as np
from PIL import Image

# Colour photographs bundled in scikit-image's wheel (0.26: all present).
PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg",
          "motorcycle_left.png", "motorcycle_right.png", "hubble_deep_field.jpg")
# (width, height): the fixed size mix, used in turn.
SIZES = ((500, 375), (375, 500), (640, 480), (800, 600), (1024, 768), (1280, 960),
         (1600, 1200))
QUALITY = 90


def bundled_photos(names: Sequence[str] = PHOTOS) -> list[np.ndarray]:
    """The photos as RGB arrays, from the files in scikit-image's package folder."""
    try:
        from skimage.data import data_dir
    except ImportError:
        raise ImportError("the photo benchmark needs scikit-image for its bundled sample "
                          "photographs: pip install -r requirements-test.txt") from None
    photos = []
    for name in names:
        path = os.path.join(data_dir, name)
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path}: this scikit-image version does not ship "
                                    f"{name} in its wheel; install the version pinned in "
                                    "requirements-test.txt (the benchmark never downloads).")
        with Image.open(path) as img:
            photos.append(np.asarray(img.convert("RGB")))
    return photos


def cover_and_crop(photo: np.ndarray, width: int, height: int, offset: float) -> np.ndarray:
    """Scaled (Lanczos) to cover width x height, then cropped; `offset` in [0, 1]
    places the crop along the longer leftover side."""
    h, w = photo.shape[:2]
    scale = max(width / w, height / h)
    new_w, new_h = max(width, round(w * scale)), max(height, round(h * scale))
    img = np.asarray(Image.fromarray(photo).resize((new_w, new_h), Image.LANCZOS))
    top = int(offset * (new_h - height))
    left = int(offset * (new_w - width))
    return img[top:top + height, left:left + width]


def encode_jpeg(img: np.ndarray, quality: int = QUALITY) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def make_jpegs(n: int, seed: int = 0) -> list[bytes]:
    """n JPEGs: photo i % 7 at size (i // 7 + i) % 7, so every pairing occurs
    once in each 49 images."""
    if n < 1:
        raise ValueError(f"n={n}: give at least one image.")
    photos = bundled_photos()
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        w, h = SIZES[(i // len(PHOTOS) + i) % len(SIZES)]
        out.append(encode_jpeg(cover_and_crop(photos[i % len(PHOTOS)], w, h, rng.random())))
    return out


def describe(jpegs: Sequence[bytes]) -> dict:
    """Mean size, megapixels and bits per pixel of the set."""
    pixels = []
    for data in jpegs:
        with Image.open(io.BytesIO(data)) as img:
            pixels.append(img.size[0] * img.size[1])
    pixels_a = np.asarray(pixels, np.float64)
    nbytes = np.asarray([len(d) for d in jpegs], np.float64)
    return {"images": len(jpegs), "mean_megapixels": float(pixels_a.mean() / 1e6),
            "mean_kbytes": float(nbytes.mean() / 1e3),
            "bits_per_pixel": float(8 * nbytes.sum() / pixels_a.sum()),
            "sizes_wxh": [list(s) for s in SIZES], "photos": list(PHOTOS),
            "jpeg_quality": QUALITY}


def as_tfds(jpegs: Sequence[bytes], data_dir: str, name: str = "bench_photos"):
    """The JPEG bytes, unchanged, as a prepared TFDS dataset with one 'train'
    split of {'image'}: what the project's input pipeline reads."""
    import tensorflow_datasets as tfds

    features = tfds.features.FeaturesDict(
        {"image": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg")})
    return tfds.dataset_builders.store_as_tfds_dataset(
        name=name, version="1.0.0", features=features, data_dir=data_dir,
        split_datasets={"train": [(f"{i:08d}", {"image": d}) for i, d in enumerate(jpegs)]})
