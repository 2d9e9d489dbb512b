"""TFDS builder `voc2007_detection`: PASCAL VOC 2007 object detection read
from an extracted local copy (nothing is downloaded).

Expected layout inside the manual folder (as VOCtrainval_06-Nov-2007.tar and
VOCtest_06-Nov-2007.tar extract, into the same place; `VOCdevkit/` or
`VOC2007/` may also be the folder itself):

    VOCdevkit/VOC2007/Annotations/<id>.xml
    VOCdevkit/VOC2007/JPEGImages/<id>.jpg
    VOCdevkit/VOC2007/ImageSets/Main/{train,val,trainval}.txt
    VOCdevkit/VOC2007/ImageSets/Main/test.txt      (split `test`, if extracted)

Boxes follow TFDS's own `voc` builder: VOC's pixel coordinates are 1-based
and inclusive, so a box is ((ymin - 1) / H, (xmin - 1) / W, ymax / H, xmax / W)
and its `area` in pixels (xmax - xmin + 1) * (ymax - ymin + 1). Objects marked
'difficult' are kept with `is_difficult`: VOC's AP neither rewards nor
penalises detecting them.

    import input_pipeline.sources.voc2007.builder  # registers it with TFDS
    builder = tfds.builder("voc2007_detection", data_dir=...)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir="/path/to/extracted"))
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds

from input_pipeline.sources.class_names import VOC_CLASSES as CLASS_NAMES
from input_pipeline.sources.local_files import (
    LocalDataError,
    check_image_size,
    find_root,
    manual_dir_of,
    require_files,
)
from input_pipeline.sources.voc2012.builder import read_ids

ROOT_CANDIDATES = (".", "VOC2007", "VOCdevkit/VOC2007")
LISTS = "ImageSets/Main"
SPLITS = ("train", "val", "trainval")
OPTIONAL_SPLITS = ("test",)  # a separate archive

INSTRUCTIONS = """\
Extract VOCtrainval_06-Nov-2007.tar (and, for the test split,
VOCtest_06-Nov-2007.tar) into one folder and pass it as manual_dir (`python -m
input_pipeline.prepare --dataset voc2007_detection --data_dir DIR --manual_dir
FOLDER`); FOLDER must hold VOCdevkit/VOC2007/ with Annotations/, JPEGImages/
and ImageSets/Main/{train,val,trainval}.txt."""
FIX = "restore it from the VOC 2007 archive."


def read_annotation(path: str) -> dict:
    """One VOC annotation xml as {height, width, objects: {bbox, label, ...}}."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        raise LocalDataError(f"{path} cannot be read ({e}); {FIX}") from None
    try:
        h = int(root.findtext("size/height"))
        w = int(root.findtext("size/width"))
        boxes, labels, difficult, truncated, areas = [], [], [], [], []
        for obj in root.findall("object"):
            name = obj.findtext("name").strip()
            if name not in CLASS_NAMES:
                raise LocalDataError(f"{path}: object class {name!r} is not one of "
                                     f"VOC's 20 ({', '.join(CLASS_NAMES)}); {FIX}")
            # Some files write coordinates as floats ('273.0').
            xmin, ymin, xmax, ymax = (float(obj.findtext(f"bndbox/{k}"))
                                      for k in ("xmin", "ymin", "xmax", "ymax"))
            boxes.append([(ymin - 1) / h, (xmin - 1) / w, ymax / h, xmax / w])
            labels.append(CLASS_NAMES.index(name))
            difficult.append(int(obj.findtext("difficult") or 0) == 1)
            truncated.append(int(obj.findtext("truncated") or 0) == 1)
            areas.append((xmax - xmin + 1) * (ymax - ymin + 1))
    except (TypeError, ValueError, AttributeError) as e:
        # findtext gives None for a missing field: int(None), float(None) fail.
        raise LocalDataError(f"{path} is not a VOC annotation (a size or object "
                             f"field is missing or not a number: {e}); {FIX}") from None
    box = np.array(boxes, np.float64).reshape(-1, 4)
    if h <= 0 or w <= 0 or (box[:, :2] > box[:, 2:]).any():
        raise LocalDataError(f"{path}: size {h}x{w} or a box with min > max; {FIX}")
    return {"height": h, "width": w, "objects": {
        "bbox": np.clip(box, 0.0, 1.0).astype(np.float32),
        "label": np.array(labels, np.int64),
        "is_difficult": np.array(difficult, np.bool_),
        "is_truncated": np.array(truncated, np.bool_),
        "area": np.array(areas, np.float32),
    }}


class Voc2007Detection(tfds.core.GeneratorBasedBuilder):
    """voc2007_detection: VOC 2007 boxes of 20 classes from a local copy."""

    name = "voc2007_detection"
    # The splits it can write, read without data by SourceKind.declared_splits.
    SPLITS = (*SPLITS, *OPTIONAL_SPLITS)
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}  # noqa: RUF012 (TFDS API)
    MANUAL_DOWNLOAD_INSTRUCTIONS = INSTRUCTIONS

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3),
                                             encoding_format="jpeg"),
                "image_id": tfds.features.Text(),  # '000005'
                "height": np.int32,
                "width": np.int32,
                "objects": tfds.features.Sequence({
                    "bbox": tfds.features.BBoxFeature(),
                    "label": tfds.features.ClassLabel(names=CLASS_NAMES),
                    "is_difficult": np.bool_,
                    "is_truncated": np.bool_,
                    "area": np.float32,  # box area in original pixels
                }),
            }),
            metadata=tfds.core.MetadataDict(class_names=list(CLASS_NAMES)),
            description=("PASCAL VOC 2007 detection; objects.bbox [ymin, xmin, ymax, "
                         "xmax] normalised (VOC's 1-based pixels, as TFDS's voc), "
                         "objects.label 0-based over metadata class_names."),
        )

    def _split_generators(self, dl_manager) -> dict:
        root = find_root(manual_dir_of(dl_manager, INSTRUCTIONS), ROOT_CANDIDATES,
                         ("Annotations", "JPEGImages", LISTS), self.name, INSTRUCTIONS)
        return {split: self._generate_examples([split_files(root, split, INSTRUCTIONS)])
                for split in (*SPLITS, *OPTIONAL_SPLITS)
                if split not in OPTIONAL_SPLITS
                or os.path.isfile(os.path.join(root, LISTS, f"{split}.txt"))}

    def _generate_examples(self, parts: list[tuple[list[str], list[str], list[str]]]
                           ) -> Iterator[tuple[str, dict]]:
        """parts: (ids, annotation xmls, images) of one devkit year each."""
        for ids, xmls, images in parts:
            for image_id, xml, image in zip(ids, xmls, images):
                ann = read_annotation(xml)
                check_image_size(image, ann["height"], ann["width"], xml, FIX)
                yield image_id, {"image": image, "image_id": image_id, **ann}


def split_files(root: str, split: str, instructions: str
                ) -> tuple[list[str], list[str], list[str]]:
    """(ids, annotation xmls, images) a devkit year's ImageSets/Main/<split>.txt
    lists, each file checked to exist."""
    list_file = os.path.join(root, LISTS, f"{split}.txt")
    require_files([list_file], f"{split} list", instructions)
    ids = read_ids(list_file)
    xmls = [os.path.join(root, "Annotations", f"{i}.xml") for i in ids]
    images = [os.path.join(root, "JPEGImages", f"{i}.jpg") for i in ids]
    fix = f"{list_file} lists them: extract the complete archive."
    require_files(xmls, f"{split} annotations", fix)
    require_files(images, f"{split} images", fix)
    return ids, xmls, images
