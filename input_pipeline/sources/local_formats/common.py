"""What the local-format builders share: the prepared copy's name, image checks,
and the count of images that could not be used.

A user's folder is read once into a prepared TFDS dataset (`<data_dir>/<builder>/
<config>/<version>`), so the training pipeline gets what it gets from every other
dataset: per-host slices, seeded file shuffling, record ids for subsets, damaged
files named. The config name holds a fingerprint of the folder's label files (or
listing): a folder that changed is written again to a new place, never read stale.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import re
from collections.abc import Iterable

import tensorflow_datasets as tfds
from absl import logging

from input_pipeline.sources.local_files import LocalDataError

VERSION = tfds.core.Version("1.0.0")
# What the pipeline's `decode` (tf.io.decode_image) reads; PIL reads more (WebP,
# TIFF), which would pass a PIL check and then fail in training.
DECODABLE_FORMATS = ("JPEG", "PNG", "GIF", "BMP")
# Names of bad images kept in the metadata (all are counted).
NAMES_KEPT = 20


def config_name(root: str, fingerprint: str) -> str:
    """`<folder name>_<hash of path and contents>`: readable, and a changed folder
    gets its own prepared copy."""
    base = re.sub(r"[^A-Za-z0-9_]+", "_", os.path.basename(root.rstrip("/"))).strip("_")
    digest = hashlib.sha256(f"{root}\n{fingerprint}".encode()).hexdigest()[:12]
    return f"{base or 'root'}_{digest}"


def fingerprint_files(paths: Iterable[str], root: str) -> str:
    """Hash of the files' relative names and contents."""
    h = hashlib.sha256()
    for path in paths:
        h.update(os.path.relpath(path, root).encode() + b"\0")
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def image_problem(data: bytes) -> str | None:
    """Why the pipeline could not decode these bytes, or None if it can.

    Decodes fully (a truncated JPEG passes a header check) but at reduced size
    (`draft`: DCT scaling), so checking costs a fraction of a full decode.
    """
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format not in DECODABLE_FORMATS:
                return f"{img.format} is not one of {', '.join(DECODABLE_FORMATS)}"
            img.draft("RGB", (64, 64))
            img.load()
    except Exception as e:  # PIL raises many types for bad data
        return f"{type(e).__name__}: {e}"
    return None


@dataclasses.dataclass
class SkipCounter:
    """Images of one split that were listed but missing or could not be decoded.

    Not fatal unless `strict`: one bad file in a million should not stop a
    preparation; the counts are logged and kept in the dataset's metadata.
    """

    dataset: str
    split: str
    strict: bool
    missing: int = 0
    unreadable: int = 0
    examples: list[str] = dataclasses.field(default_factory=list)

    def bad(self, kind: str, name: str, why: str = "") -> None:
        if self.strict:
            raise LocalDataError(
                f"{self.dataset}: image {name} of split {self.split!r} is {kind}"
                f"{f' ({why})' if why else ''}; fix or remove it from the labels, or "
                "prepare without ?strict=true to skip such images (they are counted).")
        setattr(self, kind, getattr(self, kind) + 1)
        if len(self.examples) < NAMES_KEPT:
            self.examples.append(f"{name}: {kind}{f' ({why})' if why else ''}")

    def read(self, path: str, name: str) -> bytes | None:
        """The file's bytes if present and decodable; else counted, None."""
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            self.bad("missing", name)
            return None
        except OSError as e:
            self.bad("unreadable", name, str(e))
            return None
        problem = image_problem(data)
        if problem is not None:
            self.bad("unreadable", name, problem)
            return None
        return data

    def report(self) -> dict:
        if self.missing or self.unreadable:
            logging.warning("%s, split %s: skipped %d missing and %d unreadable images: %s",
                            self.dataset, self.split, self.missing, self.unreadable,
                            "; ".join(self.examples))
        return {"missing": self.missing, "unreadable": self.unreadable,
                "examples": list(self.examples)}


def check_strict(builder: tfds.core.DatasetBuilder, strict: bool) -> None:
    """A copy prepared earlier without `strict` may have skipped images: with
    `strict` now, that is the same error it would have raised."""
    skipped = (builder.info.metadata or {}).get("skipped_images", {})
    bad = {s: r for s, r in skipped.items() if r["missing"] or r["unreadable"]}
    if strict and bad:
        raise LocalDataError(
            f"{builder.name}: the prepared copy in {builder.data_dir} skipped images "
            f"({bad}); with ?strict=true they are errors: fix them (the folder then "
            "gets a new prepared copy) or drop ?strict=true.")
