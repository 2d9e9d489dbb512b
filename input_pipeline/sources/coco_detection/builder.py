"""TFDS builder `coco_detection`: COCO 2017 object detection (instances) read
from an extracted local copy (nothing is downloaded).

Expected layout inside the manual folder (or its `coco/` subfolder):

    annotations/instances_{train,val}2017.json
    {train,val}2017/<12-digit id>.jpg

Every image of the json is written, with or without objects: COCO's box AP
on val2017 counts detections on all 5,000 images. Crowd regions are kept and
marked (`is_crowd`); detection losses ignore them, COCO's AP matches
detections to them without counting misses.

Labels are 0-based and contiguous: label i is the i-th category in order of
COCO category id (80 of the ids 1..90). `metadata['category_ids'][i]` is its
COCO id, for writing results in COCO's json format.

    import input_pipeline.sources.coco_detection.builder  # registers it with TFDS
    builder = tfds.builder("coco_detection", data_dir=...)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir="/path/to/extracted"))
"""

from __future__ import annotations

import collections
import os
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds

from input_pipeline.sources.class_names import COCO_CATEGORIES as CATEGORIES
from input_pipeline.sources.class_names import COCO_CATEGORY_IDS as CATEGORY_IDS
from input_pipeline.sources.class_names import COCO_CLASS_NAMES as CLASS_NAMES
from input_pipeline.sources.coco_keypoints.builder import ROOT_CANDIDATES, SPLITS, normalised_box
from input_pipeline.sources.local_files import (
    LocalDataError,
    check_coco_box,
    check_image_size,
    find_root,
    manual_dir_of,
    read_json,
    require_files,
)

INSTRUCTIONS = """\
Extract COCO 2017's annotations_trainval2017.zip, train2017.zip and
val2017.zip into one folder and pass it as manual_dir (`python -m
input_pipeline.prepare --dataset coco_detection --data_dir DIR --manual_dir
FOLDER`); FOLDER must hold annotations/instances_train2017.json,
annotations/instances_val2017.json, train2017/ and val2017/."""
FIX = "extract it again from annotations_trainval2017.zip."


class CocoDetection(tfds.core.GeneratorBasedBuilder):
    """coco_detection: COCO 2017 instances (boxes) from a local copy."""

    name = "coco_detection"
    # The splits it can write, read without data by SourceKind.declared_splits.
    SPLITS = tuple(SPLITS)
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}  # noqa: RUF012 (TFDS API)
    MANUAL_DOWNLOAD_INSTRUCTIONS = INSTRUCTIONS

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3),
                                             encoding_format="jpeg"),
                "image_id": np.int64,
                "height": np.int32,  # original size: box AP is in its pixels
                "width": np.int32,
                "objects": tfds.features.Sequence({
                    "id": np.int64,  # COCO annotation id
                    "bbox": tfds.features.BBoxFeature(),
                    "label": tfds.features.ClassLabel(names=CLASS_NAMES),
                    "area": np.float32,  # segment area in original pixels
                    "is_crowd": np.bool_,
                }),
            }),
            metadata=tfds.core.MetadataDict(class_names=list(CLASS_NAMES),
                                            category_ids=list(CATEGORY_IDS)),
            description=(
                "COCO 2017 object detection. objects.bbox: [ymin, xmin, ymax, xmax] "
                "normalised by the original height/width; objects.label: 0-based "
                "index into metadata class_names, whose COCO category ids are "
                "metadata category_ids; objects.area: COCO's segment area."),
        )

    def _split_generators(self, dl_manager) -> dict:
        root = find_root(manual_dir_of(dl_manager, INSTRUCTIONS), ROOT_CANDIDATES,
                         ("annotations",), self.name, INSTRUCTIONS)
        out = {}
        for split, folder in SPLITS.items():
            path = os.path.join(root, "annotations", f"instances_{folder}.json")
            require_files([path], f"{split} annotations", INSTRUCTIONS)
            images, by_image = read_instances(path)
            paths = [os.path.join(root, folder, im["file_name"]) for im in images]
            require_files(paths, f"images of {os.path.basename(path)}",
                          f"extract {folder}.zip into {os.path.join(root, folder)}.")
            out[split] = self._generate_examples(images, paths, by_image)
        return out

    def _generate_examples(self, images: list[dict], paths: list[str],
                           by_image: dict[int, list[dict]]
                           ) -> Iterator[tuple[int, dict]]:
        label_of = {c: i for i, c in enumerate(CATEGORY_IDS)}
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
                    "label": np.array([label_of[a["category_id"]] for a in anns],
                                      np.int64),
                    "area": np.array([a["area"] for a in anns], np.float32),
                    "is_crowd": np.array([bool(a["iscrowd"]) for a in anns], np.bool_),
                },
            }


def read_instances(json_path: str) -> tuple[list[dict], dict[int, list[dict]]]:
    """(image records sorted by id, annotations by image id) of an instances json.

    Checks what the examples are built from, so a wrong or damaged file fails
    here with its name rather than as a KeyError deep inside TFDS.
    """
    data = read_json(json_path, FIX)
    try:
        categories = sorted((int(c["id"]), str(c["name"])) for c in data["categories"])
        images = sorted(data["images"], key=lambda im: im["id"])
        annotations = data["annotations"]
        for a in annotations:
            _require_keys(a, ("id", "image_id", "category_id", "area", "iscrowd", "bbox"))
            check_coco_box(json_path, a, FIX)
        for im in images:
            _require_keys(im, ("id", "file_name", "height", "width"))
    except (KeyError, TypeError) as e:
        raise LocalDataError(
            f"{json_path} is not a COCO instances file (missing {e}); use "
            f"annotations/instances_*2017.json from annotations_trainval2017.zip."
        ) from None
    if tuple(categories) != CATEGORIES:
        raise LocalDataError(
            f"{json_path} has categories {categories[:3]}... ({len(categories)}), not "
            f"COCO 2017's 80 ({CATEGORIES[:3]}...); use COCO 2017's instances files.")
    known = {im["id"] for im in images}
    by_image: dict[int, list[dict]] = collections.defaultdict(list)
    for a in annotations:
        if a["image_id"] not in known:
            raise LocalDataError(f"{json_path}: annotation {a['id']} is of image "
                                 f"{a['image_id']}, which the file does not list; {FIX}")
        if a["category_id"] not in CATEGORY_IDS:
            raise LocalDataError(f"{json_path}: annotation {a['id']} has category "
                                 f"{a['category_id']}, which is not a COCO 2017 "
                                 f"category; {FIX}")
        by_image[a["image_id"]].append(a)
    return images, by_image


def _require_keys(record: dict, keys: tuple[str, ...]) -> None:
    for k in keys:
        if k not in record:
            raise KeyError(k)
