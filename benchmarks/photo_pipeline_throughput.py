"""Input pipeline images/second per core on real photos at collection sizes.

The photos (benchmarks.photo_set: scikit-image's bundled photographs, 500x375
to 1600x1200, JPEG quality 90) go into a TFDS dataset and through the
project's training pipeline (`stream.batches.train_dataset`, the recipes' pp
strings) on one tf.data thread. Beside it, in the same process and
interleaved so machine noise hits all, a PIL loop and an OpenCV loop do the
same work on the same bytes on one core:

  paper      decode, resize 340x340 (bilinear), random 299 crop, flip, [-1, 1]
  inception  decode, inception crop (5-100% area, aspect 3/4-4/3) resized to
             224 (bilinear), flip, [-1, 1]

each with and without the decode shortcut (pp.decode): DCT-scaled decoding
for the paper recipe (TF `decode_jpeg(ratio=r)`, PIL `Image.draft`, OpenCV
`IMREAD_REDUCED_COLOR_r`, r the largest of 2/4/8 that keeps both sides at or
above 340), and crop-window decoding for the inception crop (TF
`decode_and_crop_jpeg`; PIL and OpenCV have none). PIL's BILINEAR filters
over the whole footprint when shrinking (antialiased), more work than TF's
and OpenCV's bilinear, which sample 2x2 pixels.

Cores to feed one accelerator = its step rate / (img/s per core), the step
rates read from a train_step_throughput JSON (--step_rates).

    python -m benchmarks.photo_pipeline_throughput [--images 490] [--json out.json] \
        [--step_rates benchmarks/results/h200_train_step_bf16.json]
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import platform
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2
import numpy as np
import tensorflow as tf
from PIL import Image

from benchmarks import photo_set
from benchmarks.input_pipeline_throughput import one_thread
from input_pipeline.keys import SEED_KEY
from input_pipeline.pp.base import PPContext
from input_pipeline.pp.builder import build_preprocess
from input_pipeline.pp.recipes import inception_train, paper_train
from input_pipeline.pp.registry import default_registry
from input_pipeline.sources.core import DataSource
from input_pipeline.stream import batches

# The accelerator's training rates (img/s per run name) come from a measured
# train_step_throughput JSON: by default this project's H200 figures.
STEP_RATES_JSON = "benchmarks/results/h200_train_step_bf16.json"
RESIZE, CROP, INCEPTION = 340, 299, 224
RECIPES = {  # (recipe, shortcut) -> pp string
    ("paper", False): paper_train(CROP, RESIZE),
    ("paper", True): paper_train(CROP, RESIZE, fused_decode=True),
    ("inception", False): inception_train(INCEPTION),
    ("inception", True): inception_train(INCEPTION, fused_decode=True),
}


class Clock:
    """Wall and process CPU time (all threads) of a measured stretch."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu

    def rates(self, n: int) -> tuple[float, float]:
        """(images per wall second, images per CPU second)."""
        return n / self.wall, n / self.cpu


def pipeline_rate(source: DataSource, spec: str, images: int, batch: int) -> tuple[float, float]:
    """(img/s, img per CPU-s) of the training pipeline restricted to one thread."""
    pp = build_preprocess(spec + "|keep('image')", default_registry(), PPContext())
    ds = batches.train_dataset(source, "train", pp, batch, seed=0,
                               shard=batches.HostShard(0, 1), shuffle_buffer=256)
    it = iter(one_thread(ds))
    for _ in range(2):  # warm up: fill buffers, trace functions
        next(it)
    n = max(1, images // batch)
    with Clock() as clock:
        for _ in range(n):
            next(it)["image"].numpy()
    return clock.rates(n * batch)


def dct_ratio(width: int, height: int, target: int) -> int:
    """The largest r in 1/2/4/8 with both sides // r >= target (pp.decode's rule)."""
    return max(r for r in (1, 2, 4, 8) if width // r >= target and height // r >= target)


def inception_window(rng: np.random.Generator, h: int, w: int, area_min: float = 0.05,
                     area_max: float = 1.0, attempts: int = 100) -> tuple[int, int, int, int]:
    """(top, left, height, width): TF's sample_distorted_bounding_box distribution
    (area fraction and log-aspect uniform, 100 attempts, else the whole image)."""
    for _ in range(attempts):
        area = rng.uniform(area_min, area_max) * h * w
        aspect = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        cw, ch = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            return int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1)), ch, cw
    return 0, 0, h, w


def finish(arr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Flip with probability 1/2, scale to [-1, 1] float32 (as flip_lr|value_range)."""
    if rng.random() < 0.5:
        arr = arr[:, ::-1]
    return arr.astype(np.float32) * np.float32(2 / 255) - 1


def pil_paper(data: bytes, rng, shortcut: bool) -> np.ndarray:
    img = Image.open(io.BytesIO(data))
    if shortcut:  # libjpeg DCT scaling to the smallest scale still >= 340x340
        img.draft("RGB", (RESIZE, RESIZE))
    arr = np.asarray(img.convert("RGB").resize((RESIZE, RESIZE), Image.BILINEAR))
    top, left = rng.integers(0, RESIZE - CROP + 1, 2)
    return finish(arr[top:top + CROP, left:left + CROP], rng)


def pil_inception(data: bytes, rng, shortcut: bool) -> np.ndarray:
    img = Image.open(io.BytesIO(data)).convert("RGB")
    top, left, h, w = inception_window(rng, img.height, img.width)
    crop = img.resize((INCEPTION, INCEPTION), Image.BILINEAR,
                      box=(left, top, left + w, top + h))
    return finish(np.asarray(crop), rng)


def cv2_paper(data: bytes, rng, shortcut: bool) -> np.ndarray:
    buf = np.frombuffer(data, np.uint8)
    flag = cv2.IMREAD_COLOR
    if shortcut:
        with Image.open(io.BytesIO(data)) as header:  # reads the header only
            r = dct_ratio(header.width, header.height, RESIZE)
        flag = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2,
                4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}[r]
    img = cv2.cvtColor(cv2.imdecode(buf, flag), cv2.COLOR_BGR2RGB)
    arr = cv2.resize(img, (RESIZE, RESIZE), interpolation=cv2.INTER_LINEAR)
    top, left = rng.integers(0, RESIZE - CROP + 1, 2)
    return finish(arr[top:top + CROP, left:left + CROP], rng)


def cv2_inception(data: bytes, rng, shortcut: bool) -> np.ndarray:
    img = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR),
                       cv2.COLOR_BGR2RGB)
    top, left, h, w = inception_window(rng, *img.shape[:2])
    crop = cv2.resize(img[top:top + h, left:left + w], (INCEPTION, INCEPTION),
                      interpolation=cv2.INTER_LINEAR)
    return finish(crop, rng)


LOOPS = {("paper", "PIL"): pil_paper, ("paper", "OpenCV"): cv2_paper,
         ("inception", "PIL"): pil_inception, ("inception", "OpenCV"): cv2_inception}
# Library loops that have the shortcut (PIL and OpenCV cannot decode a window).
HAS_SHORTCUT = {("paper", "PIL"), ("paper", "OpenCV")}


def loop_rate(fn, jpegs: list[bytes], shortcut: bool, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    with Clock() as clock:
        for data in jpegs:
            fn(data, rng, shortcut)
    return clock.rates(len(jpegs))


def shortcut_difference(jpegs: list[bytes], limit: int = 49) -> dict:
    """max / mean |uint8 difference| of decode_jpeg_and_resize(340) against
    decode|resize(340) on the benchmark's photos the shortcut applies to (both
    sides at least 680; smaller ones decode exactly as before), and how much an
    antialiased resize differs from the plain one there (its own aliasing)."""
    reg = default_registry()
    specs = (f"decode|resize({RESIZE})", f"decode_jpeg_and_resize({RESIZE})",
             f"decode|resize({RESIZE}, antialias=True)")
    pps = [build_preprocess(s, reg, PPContext()) for s in specs]

    def run(pp, data):
        ex = {"image": tf.constant(data), SEED_KEY: tf.constant([0, 0], tf.int64)}
        return pp.rest(pp.decode_stage(ex))["image"].numpy().astype(np.int32)

    def scaled(data):
        with Image.open(io.BytesIO(data)) as img:
            return dct_ratio(img.width, img.height, RESIZE) > 1

    diffs, alias = [], []
    for data in [d for d in jpegs if scaled(d)][:limit]:
        full, fast, smooth = (run(pp, data) for pp in pps)
        diffs.append(np.abs(fast - full))
        alias.append(np.abs(smooth - full))
    if not diffs:
        return {"images": 0}
    d, a = np.stack(diffs), np.stack(alias)
    return {"images": len(diffs), "max_abs": int(d.max()), "mean_abs": float(d.mean()),
            "antialias_vs_plain_mean_abs": float(a.mean())}


def step_rates(path: str) -> dict[str, float]:
    """img/s of each run of a `benchmarks.train_step_throughput --json` file."""
    with open(path) as f:
        return {r["name"]: float(r["img_per_s"]) for r in json.load(f)["runs"]
                if "img_per_s" in r}


def measure(jpegs: list[bytes], source: DataSource, images: int, batch: int, repeats: int,
            rates: dict[str, float]) -> list:
    """Rows of the table. Per core = images per CPU-second of the process (all its
    threads), best of `repeats`: on a shared machine CPU time is what other
    processes disturb least; the wall-clock rate is kept beside it."""
    best: dict = {}

    def keep(key, rates):
        old = best.get(key, (0.0, 0.0))
        best[key] = (max(old[0], rates[0]), max(old[1], rates[1]))

    for rep in range(repeats):  # interleaved, so machine noise hits every row
        for recipe in ("paper", "inception"):
            for shortcut in (False, True):
                keep((recipe, "tf.data (project)", shortcut),
                     pipeline_rate(source, RECIPES[recipe, shortcut], images, batch))
                for lib in ("PIL", "OpenCV"):
                    if shortcut and (recipe, lib) not in HAS_SHORTCUT:
                        continue
                    keep((recipe, lib, shortcut),
                         loop_rate(LOOPS[recipe, lib], jpegs, shortcut, seed=rep))
    out = []
    for (recipe, method, shortcut), (wall, cpu) in best.items():
        row = {"recipe": recipe, "method": method, "shortcut": shortcut,
               "img_per_s_per_core": cpu, "img_per_s_wall": wall,
               "vs_PIL": cpu / best[recipe, "PIL", False][1],
               "vs_OpenCV": cpu / best[recipe, "OpenCV", False][1],
               "cores_per_accelerator": {k: v / cpu for k, v in rates.items()}}
        if shortcut:
            row["shortcut_speedup"] = cpu / best[recipe, method, False][1]
        out.append(row)
    return out


def print_table(rows: list, photos: dict, quality: dict, rates: dict[str, float]) -> None:
    names = list(rates)
    print(f"{photos['images']} JPEGs, mean {photos['mean_megapixels']:.2f} MP, "
          f"{photos['mean_kbytes']:.0f} kB, {photos['bits_per_pixel']:.2f} bits/pixel")
    head = (f"{'recipe':<10} {'method':<18} {'shortcut':<9} {'img/s/core':>10} {'wall img/s':>10} "
            f"{'vs PIL':>7} {'vs cv2':>7} {'speedup':>8} " +
            " ".join(f"{'cores@' + str(int(rates[n])):>11}" for n in names))
    print(head)
    for r in rows:
        speed = f"{r['shortcut_speedup']:.2f}" if r["shortcut"] else ""
        print(f"{r['recipe']:<10} {r['method']:<18} {'yes' if r['shortcut'] else 'no':<9} "
              f"{r['img_per_s_per_core']:>10.1f} {r['img_per_s_wall']:>10.1f} "
              f"{r['vs_PIL']:>7.2f} {r['vs_OpenCV']:>7.2f} "
              f"{speed:>8} " +
              " ".join(f"{r['cores_per_accelerator'][n]:>11.1f}" for n in names))
    if not quality["images"]:
        print("no photo is 680 px or more on both sides: the DCT shortcut never applied")
        return
    print(f"DCT-scaled decode vs full decode, resize({RESIZE}), {quality['images']} photos: "
          f"max |diff| {quality['max_abs']}, mean {quality['mean_abs']:.2f} "
          f"(antialiased vs plain resize: mean {quality['antialias_vs_plain_mean_abs']:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=490)
    parser.add_argument("--batch", type=int, default=14)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--quality_images", type=int, default=49,
                        help="photos on which the DCT shortcut's difference is measured")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--step_rates", default=STEP_RATES_JSON,
                        help="a train_step_throughput JSON: the step rates the cores per "
                             "accelerator are computed for")
    args = parser.parse_args()
    rates = step_rates(args.step_rates)
    if args.images < args.batch:
        parser.error(f"--images {args.images} < --batch {args.batch}: give at least a batch.")
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    cv2.setNumThreads(1)
    jpegs = photo_set.make_jpegs(args.images)
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="bench_photos_")
    source = DataSource("photos", photo_set.as_tfds(jpegs, data_dir))
    rows = measure(jpegs, source, args.images, args.batch, args.repeats, rates)
    photos = photo_set.describe(jpegs)
    quality = shortcut_difference(jpegs, args.quality_images)
    print_table(rows, photos, quality, rates)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": {"cpu": platform.processor() or platform.machine(),
                                   "cpus": os.cpu_count(), "load_1min": os.getloadavg()[0],
                                   "tensorflow": tf.__version__, "pillow": Image.__version__,
                                   "opencv": cv2.__version__},
                       "photos": photos, "step_rates_img_per_s": rates,
                       "dct_shortcut_difference": quality, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
