"""TFDS builder `coco_keypoints`: COCO 2017 person keypoints read from an
extracted local copy (nothing is downloaded).

Expected layout inside the manual folder (or its `coco/` subfolder):

    annotations/person_keypoints_{train,val}2017.json
    {train,val}2017/<12-digit id>.jpg

One example per image with at least one person annotation (crowd regions
count); config `all_images` keeps images without people too, as COCO's
keypoint AP on all 5,000 val2017 images expects (a detection on an image
without people is a false positive there).

Coordinates are normalised by the image's original size, stored beside them
(`height`, `width`), so an evaluator maps predictions back to original pixels:
x_px = x * width, y_px = y * height. COCO's `area` and `iscrowd` are kept as
the annotation gives them, for the OKS-based keypoint AP.

    import input_pipeline.sources.coco_keypoints.builder  # registers it with TFDS
    builder = tfds.builder("coco_keypoints", data_dir=...)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir="/path/to/extracted"))
"""

from __future__ import annotations

import collections
import dataclasses
import os
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds

from input_pipeline.sources.local_files import (
    LocalDataError,
    check_coco_box,
    check_image_size,
    find_root,
    manual_dir_of,
    read_json,
    require_files,
)

KEYPOINT_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle")
NUM_KEYPOINTS = len(KEYPOINT_NAMES)
# COCO's person skeleton, made zero-based (the json's is one-based).
SKELETON = tuple((a - 1, b - 1) for a, b in (
    (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7),
    (6, 8), (7, 9), (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5),
    (4, 6), (5, 7)))
ROOT_CANDIDATES = (".", "coco", "coco2017")
SPLITS = {"train": "train2017", "val": "val2017"}

INSTRUCTIONS = """\
Extract COCO 2017's annotations_trainval2017.zip, train2017.zip and
val2017.zip into one folder and pass it as manual_dir (`python -m
input_pipeline.prepare --dataset coco_keypoints --data_dir DIR --manual_dir
FOLDER`); FOLDER must hold annotations/person_keypoints_train2017.json,
annotations/person_keypoints_val2017.json, train2017/ and val2017/."""


def flip_pairs(names: tuple[str, ...] = KEYPOINT_NAMES) -> list[tuple[int, int]]:
    """Zero-based (left, right) index pairs a horizontal flip swaps."""
    index = {n: i for i, n in enumerate(names)}
    return [(i, index["right_" + n[5:]]) for i, n in enumerate(names)
            if n.startswith("left_")]


def normalised_box(bbox: list[float], height: int, width: int) -> np.ndarray:
    """COCO's [x, y, w, h] in pixels as [ymin, xmin, ymax, xmax] in [0, 1].

    COCO boxes can poke a fraction of a pixel past the border; TFDS boxes
    must lie inside [0, 1], so they are clipped there.
    """
    x, y, w, h = (float(v) for v in bbox)
    box = np.array([y / height, x / width, (y + h) / height, (x + w) / width])
    return np.clip(box, 0.0, 1.0).astype(np.float32)


def normalised_keypoints(flat: list[float], height: int, width: int) -> np.ndarray:
    """COCO's [x1, y1, v1, ...] in pixels as [17, 3] (y, x in image units, v)."""
    kp = np.asarray(flat, np.float64).reshape(NUM_KEYPOINTS, 3)
    return np.stack([kp[:, 1] / height, kp[:, 0] / width, kp[:, 2]], 1).astype(np.float32)


@dataclasses.dataclass(eq=False)
class CocoKeypointsConfig(tfds.core.BuilderConfig):
    """keep_images_without_people: also write images with no person annotation."""

    keep_images_without_people: bool = False


class CocoKeypoints(tfds.core.GeneratorBasedBuilder):
    """coco_keypoints: COCO 2017 person keypoints from a local copy."""

    name = "coco_keypoints"
    # The splits it can write, read without data by SourceKind.declared_splits.
    SPLITS = tuple(SPLITS)
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}  # noqa: RUF012 (TFDS API)
    MANUAL_DOWNLOAD_INSTRUCTIONS = INSTRUCTIONS
    BUILDER_CONFIGS = [  # noqa: RUF012 (TFDS API)
        CocoKeypointsConfig(name="people", description="Images with a person "
                            "annotation (train2017: 64,115, val2017: 2,693)."),
        CocoKeypointsConfig(name="all_images", description="Every image "
                            "(train2017: 118,287, val2017: 5,000).",
                            keep_images_without_people=True),
    ]
    DEFAULT_CONFIG_NAME = "people"

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3),
                                             encoding_format="jpeg"),
                "image_id": np.int64,
                "height": np.int32,  # original size: keypoint AP is in its pixels
                "width": np.int32,
                "objects": tfds.features.Sequence({
                    "id": np.int64,  # COCO annotation id
                    "bbox": tfds.features.BBoxFeature(),
                    "keypoints": tfds.features.Tensor(shape=(NUM_KEYPOINTS, 3),
                                                      dtype=np.float32),
                    "num_keypoints": np.int32,
                    "area": np.float32,  # segment area in original pixels
                    "iscrowd": np.bool_,
                }),
            }),
            metadata=tfds.core.MetadataDict(
                class_names=["person"],  # the one category of person_keypoints
                keypoint_names=list(KEYPOINT_NAMES),
                skeleton=[list(p) for p in SKELETON],
                flip_pairs=[list(p) for p in flip_pairs()]),
            description=(
                "COCO 2017 person keypoints. objects.bbox: [ymin, xmin, ymax, xmax] "
                "normalised; objects.keypoints: [17, 3] = (y, x normalised by the "
                "original height/width, visibility 0 unlabelled / 1 hidden / 2 "
                "visible). metadata: keypoint_names, zero-based skeleton and "
                "left/right flip_pairs."),
        )

    def _split_generators(self, dl_manager) -> dict:
        root = find_root(manual_dir_of(dl_manager, INSTRUCTIONS), ROOT_CANDIDATES,
                         ("annotations",), self.name, INSTRUCTIONS)
        out = {}
        for split, folder in SPLITS.items():
            path = os.path.join(root, "annotations", f"person_keypoints_{folder}.json")
            require_files([path], f"{split} annotations", INSTRUCTIONS)
            out[split] = self._examples(path, os.path.join(root, folder))
        return out

    def _examples(self, json_path: str, image_dir: str) -> Iterator[tuple[int, dict]]:
        images, by_image = read_annotations(json_path)
        keep = self.builder_config.keep_images_without_people
        images = [im for im in images if keep or by_image[im["id"]]]
        paths = [os.path.join(image_dir, im["file_name"]) for im in images]
        require_files(paths, f"images of {os.path.basename(json_path)}",
                      f"extract the matching image archive into {image_dir}.")
        return self._generate_examples(images, paths, by_image)

    def _generate_examples(self, images: list[dict], paths: list[str],
                           by_image: dict[int, list[dict]]
                           ) -> Iterator[tuple[int, dict]]:
        for im, path in zip(images, paths):
            h, w = int(im["height"]), int(im["width"])
            check_image_size(path, h, w, "its annotation file",
                             "the image and annotation files come from different "
                             "releases: use COCO 2017's for both.")
            anns = by_image[im["id"]]
            yield int(im["id"]), {
                "image": path,
                "image_id": int(im["id"]),
                "height": h,
                "width": w,
                "objects": {
                    "id": np.array([a["id"] for a in anns], np.int64),
                    "bbox": np.array([normalised_box(a["bbox"], h, w) for a in anns],
                                     np.float32).reshape(-1, 4),
                    "keypoints": np.array(
                        [normalised_keypoints(a["keypoints"], h, w) for a in anns],
                        np.float32).reshape(-1, NUM_KEYPOINTS, 3),
                    "num_keypoints": np.array([a["num_keypoints"] for a in anns],
                                              np.int32),
                    "area": np.array([a["area"] for a in anns], np.float32),
                    "iscrowd": np.array([bool(a["iscrowd"]) for a in anns], np.bool_),
                },
            }


def read_annotations(json_path: str) -> tuple[list[dict], dict[int, list[dict]]]:
    """(image records, person annotations by image id) of a COCO keypoints json."""
    data = read_json(json_path, "extract it again from annotations_trainval2017.zip.")
    try:
        person = next(c for c in data["categories"] if c["name"] == "person")
        if tuple(person["keypoints"]) != KEYPOINT_NAMES:
            raise LocalDataError(
                f"{json_path}: the person category names keypoints "
                f"{person['keypoints']}, not COCO's 17; is it a COCO keypoints file?")
        by_image: dict[int, list[dict]] = collections.defaultdict(list)
        for a in data["annotations"]:
            if a["category_id"] == person["id"]:
                by_image[a["image_id"]].append(a)
        images = sorted(data["images"], key=lambda im: im["id"])
    except (KeyError, StopIteration, TypeError) as e:
        raise LocalDataError(
            f"{json_path} is not a COCO person_keypoints file (missing {e}); use "
            "annotations/person_keypoints_*2017.json from annotations_trainval2017.zip."
        ) from None
    for a in (a for anns in by_image.values() for a in anns):
        check_coco_box(json_path, a, "extract it again from annotations_trainval2017.zip.")
        if len(a.get("keypoints", ())) != 3 * NUM_KEYPOINTS:
            raise LocalDataError(
                f"{json_path}: annotation {a.get('id')} has "
                f"{len(a.get('keypoints', ())) // 3} keypoints, not "
                f"{NUM_KEYPOINTS}; is it a COCO person_keypoints file?")
    return images, by_image
