"""Finding and reading Open Images' image-level label files (no TensorFlow).

The files keep the names of the official downloads (V5, V6 and V7 are read):

    class list     oidv7-class-descriptions.csv, oidv6-class-descriptions.csv
                   (header `LabelName,DisplayName`) or the older
                   class-descriptions.csv (no header); `-boxable` lists as a
                   last resort.  Rows: `/m/011k07,Tortoise`.
    human labels   oidv7-train-annotations-human-imagelabels.csv,
                   oidv7-val-..., oidv6-train-..., validation-...,
                   test-annotations-human-imagelabels.csv (and `-boxable`
                   subsets).  Header `ImageID,Source,LabelName,Confidence`;
                   Confidence 1: verified present, 0: verified absent.
    machine labels the same names with `machine`; Confidence is the
                   classifier's score.
    hierarchy      bbox_labels_600_hierarchy.json (optional): nested
                   {"LabelName", "Subcategory": [...]}, rooted at Entity.
    rotations      the image-id files (optional): train-images-boxable-with-
                   rotation.csv, oidv6-train-images-with-labels-with-rotation.csv,
                   validation-images-with-rotation.csv, ...; their `Rotation`
                   column gives the degrees (0, 90, 180, 270) an image is to be
                   turned counter-clockwise to stand as its author took it.
    images         train/<ImageID>.jpg, validation/<ImageID>.jpg,
                   test/<ImageID>.jpg (as the CVDF / AWS downloads).

The annotation files may lie in the folder itself or in annotations/,
labels/ or metadata/; the image folders in the folder itself or in images/.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import os
import re
from collections.abc import Iterable, Sequence

import numpy as np

from input_pipeline.sources.local_files import LocalDataError, read_json

LABEL_HEADER = ["ImageID", "Source", "LabelName", "Confidence"]
ANNOTATION_DIRS = (".", "annotations", "labels", "metadata")
# Newest full list first; a boxable list (600 classes) only when no full one is there.
CLASS_FILES = ("oidv7-class-descriptions.csv", "oidv6-class-descriptions.csv",
               "class-descriptions.csv", "oidv7-class-descriptions-boxable.csv",
               "oidv6-class-descriptions-boxable.csv", "class-descriptions-boxable.csv")
HIERARCHY_FILE = "bbox_labels_600_hierarchy.json"
SPLITS = ("train", "validation", "test")
IMAGE_DIRS = {"train": ("train",), "validation": ("validation", "val"), "test": ("test",)}
_LABEL_FILE = re.compile(
    r"^(?:oidv\d+-)?(train|validation|val|test)-annotations-(human|machine)-imagelabels"
    r"(?:-boxable)?\.csv$")
_ROTATION_FILE = re.compile(
    r"^(?:oidv\d+-)?(train|validation|val|test)-images(?:-boxable|-with-labels)?"
    r"-with-rotation\.csv$")
# How many ids or names a report lists by name.
EXAMPLES_SHOWN = 10

INSTRUCTIONS = """\
Put Open Images' image-level files in one folder and pass it as manual_dir
(`python -m input_pipeline.prepare --dataset open_images_labels/human
--data_dir DIR --manual_dir FOLDER`): the class list
(oidv7-class-descriptions.csv or oidv6-class-descriptions.csv), the human-verified
labels (oidv7-train-annotations-human-imagelabels.csv, ...; for machine labels also
*-annotations-machine-imagelabels.csv), optionally bbox_labels_600_hierarchy.json
and the image-id files with rotation (*-images*-with-rotation.csv), and the images
as train/<ImageID>.jpg, validation/<ImageID>.jpg, test/<ImageID>.jpg.
The CSV and JSON files may also lie in FOLDER/annotations/."""


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where a local copy keeps its files."""

    root: str
    class_file: str
    hierarchy_file: str | None
    # split -> kind ('human' / 'machine') -> files
    label_files: dict[str, dict[str, tuple[str, ...]]]
    # split -> image-id files with a Rotation column
    rotation_files: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)


def find_layout(manual_dir: str) -> Layout:
    """The class list, hierarchy and label files under `manual_dir`."""
    dirs = [os.path.normpath(os.path.join(manual_dir, d)) for d in ANNOTATION_DIRS]
    dirs = [d for d in dirs if os.path.isdir(d)]
    class_file = next((os.path.join(d, f) for f in CLASS_FILES for d in dirs
                       if os.path.isfile(os.path.join(d, f))), None)
    if class_file is None:
        raise LocalDataError(f"open_images_labels: no class list ({', '.join(CLASS_FILES[:3])}) "
                             f"in {' or '.join(dirs)}. {INSTRUCTIONS}")
    label_files: dict[str, dict[str, list[str]]] = collections.defaultdict(
        lambda: collections.defaultdict(list))
    hierarchies = []
    rotation_files: dict[str, list[str]] = collections.defaultdict(list)
    for d in dirs:
        for name in sorted(os.listdir(d)):
            path = os.path.join(d, name)
            rotation = _ROTATION_FILE.match(name)
            if rotation:
                rotation_files["validation" if rotation[1] == "val" else rotation[1]].append(path)
            # Other image-level files (the challenges' *-detection-human-imagelabels.csv)
            # are not this format's and are left alone.
            if re.search(r"-annotations-(human|machine)-imagelabels", name):
                match = _LABEL_FILE.match(name)
                if match is None:
                    raise LocalDataError(
                        f"{path}: cannot tell its split from the name; name it as the "
                        "official files are (e.g. oidv7-train-annotations-human-"
                        "imagelabels.csv, validation-annotations-machine-imagelabels.csv) "
                        "or move it out of the folder.")
                split = "validation" if match[1] == "val" else match[1]
                label_files[split][match[2]].append(path)
            elif name.endswith(".json") and "hierarchy" in name:
                hierarchies.append(path)
    if not any(files.get("human") or files.get("machine") for files in label_files.values()):
        raise LocalDataError(f"open_images_labels: no *-annotations-human-imagelabels*.csv or "
                             f"*-annotations-machine-imagelabels*.csv in {' or '.join(dirs)}. "
                             f"{INSTRUCTIONS}")
    preferred = [h for h in hierarchies if os.path.basename(h) == HIERARCHY_FILE]
    if len(preferred or hierarchies) > 1:
        raise LocalDataError(f"open_images_labels: several hierarchy files "
                             f"({', '.join(preferred or hierarchies)}); keep one.")
    return Layout(os.path.normpath(manual_dir), class_file,
                  (preferred or hierarchies or [None])[0],
                  {s: {k: tuple(v) for k, v in kinds.items()}
                   for s, kinds in label_files.items()},
                  {s: tuple(v) for s, v in rotation_files.items()})


def read_rotations(paths: Sequence[str], wanted: Iterable[str]) -> dict[str, int]:
    """ImageID -> quarter turns counter-clockwise (1, 2 or 3) of the `wanted`
    images that the files say to turn. An empty or 'nan' Rotation (the photo
    left Flickr before its orientation was read) leaves the image as it is."""
    wanted = set(wanted)
    turns: dict[str, int] = {}
    for path in paths:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            if not {"ImageID", "Rotation"} <= set(reader.fieldnames or ()):
                raise LocalDataError(f"{path}: no ImageID and Rotation columns (header "
                                     f"{reader.fieldnames}); is it an Open Images image-id "
                                     "file with rotation?")
            for lineno, row in enumerate(reader, 2):
                image, value = row["ImageID"], (row["Rotation"] or "").strip()
                if image not in wanted or value.lower() in ("", "nan"):
                    continue
                try:
                    degrees = float(value)
                except ValueError:
                    degrees = -1.0
                if degrees not in (0.0, 90.0, 180.0, 270.0):
                    raise LocalDataError(f"{path}:{lineno}: Rotation {value!r} is not 0, 90, "
                                         "180 or 270; download the file again.")
                if degrees:
                    turns[image] = int(degrees) // 90
    return turns


def image_dir(root: str, split: str) -> str | None:
    """The folder of `split`'s images, or None when there is none."""
    for base in (".", "images"):
        for name in IMAGE_DIRS[split]:
            path = os.path.normpath(os.path.join(root, base, name))
            if os.path.isdir(path):
                return path
    return None


def list_images(folder: str) -> dict[str, str]:
    """ImageID -> file name of the JPEGs in `folder` (one directory read, no stat
    per listed id: a 9M-row label file against a partial download stays fast)."""
    out = {}
    with os.scandir(folder) as it:
        for entry in it:
            stem, ext = os.path.splitext(entry.name)
            if ext.lower() in (".jpg", ".jpeg"):
                out[stem] = entry.name
    return out


def read_class_descriptions(path: str) -> tuple[list[str], list[str]]:
    """(LabelNames, DisplayNames) in file order; V6+ files have a header, older do not."""
    names, display = [], []
    with open(path, newline="", encoding="utf-8-sig") as f:
        for lineno, row in enumerate(csv.reader(f), 1):
            if not row:
                continue
            if lineno == 1 and not row[0].startswith("/"):
                continue  # the header (LabelName,DisplayName)
            if len(row) != 2:
                raise LocalDataError(f"{path}:{lineno}: expected 'LabelName,DisplayName', "
                                     f"got {row!r}; is it a class-descriptions file?")
            names.append(row[0])
            display.append(row[1])
    if not names:
        raise LocalDataError(f"{path} lists no classes; download it again.")
    seen = collections.Counter(names)
    twice = [n for n, c in seen.items() if c > 1]
    if twice:
        raise LocalDataError(f"{path} lists {twice[0]!r} {seen[twice[0]]} times; class "
                             "LabelNames must be unique: download it again.")
    return names, display


def hierarchy_pairs(path: str, index: dict[str, int]) -> list[tuple[int, int]]:
    """(child, parent) class ids of an Open Images hierarchy JSON.

    Only `Subcategory` (is-a) edges count; `Part` (part-of: a wheel is part of
    a car, not a car) does not make a parent. The root (Entity) is skipped
    even where the class list names it: it would label every image. A class
    under several parents yields one pair per parent.
    """
    tree = read_json(path, "download bbox_labels_600_hierarchy.json again.")
    if not isinstance(tree, dict) or "LabelName" not in tree:
        raise LocalDataError(f"{path}: expected {{'LabelName': ..., 'Subcategory': [...]}} "
                             "at the top; is it an Open Images hierarchy file?")
    pairs: set[tuple[int, int]] = set()
    stack: list[tuple[dict, int | None]] = [(c, None) for c in tree.get("Subcategory", [])]
    while stack:
        node, parent = stack.pop()
        name = node.get("LabelName")
        if name not in index:
            raise LocalDataError(
                f"{path}: class {name!r} is not in the class list; use the class "
                "descriptions file of the same Open Images version as the hierarchy.")
        me = index[name]
        if parent is not None:
            pairs.add((me, parent))
        stack.extend((c, me) for c in node.get("Subcategory", []))
    return sorted(pairs)


@dataclasses.dataclass
class SplitLabels:
    """The labels of one split's images that are on disk, and what was left out."""

    positives: dict[str, set[int]]
    negatives: dict[str, set[int]]
    missing: set[str]  # listed, no image file
    listed: set[str] = dataclasses.field(default_factory=set)  # listed and on disk
    unknown_rows: int = 0  # rows naming a class outside the class list
    unknown_names: set[str] = dataclasses.field(default_factory=set)
    machine_below_threshold: int = 0
    machine_overruled: int = 0  # machine positives a human marked absent
    conflicts: int = 0  # (image, class) a human marked both present and absent


def read_split_labels(human: Sequence[str], machine: Sequence[str],
                      index: dict[str, int], present: Iterable[str],
                      machine_threshold: float | None) -> SplitLabels:
    """Positives and verified negatives per image that is on disk.

    A human verdict decides its (image, class): 1 a positive, 0 a verified
    negative, overruling the machine. Without one, a machine label of
    Confidence >= machine_threshold is a positive (None: machine labels
    unused); lower ones stay unknown, never negatives. Rows of images not in
    `present` only count them as missing, so memory follows the images on disk.
    """
    present = set(present)
    pos: dict[str, set[int]] = collections.defaultdict(set)
    neg: dict[str, set[int]] = collections.defaultdict(set)
    out = SplitLabels(pos, neg, set())
    for path in human:
        for image, label, conf, lineno in _rows(path, index, present, out):
            if conf == 1.0:
                pos[image].add(label)
            elif conf == 0.0:
                neg[image].add(label)
            else:
                raise LocalDataError(f"{path}:{lineno}: Confidence {conf} in a human-"
                                     "verified file, where it is 0 or 1; is it a machine "
                                     "label file named as a human one?")
    for image, labels in pos.items():
        both = labels & neg.get(image, set())
        if both:  # two raters disagree; a present object is the safer reading
            out.conflicts += len(both)
            neg[image] -= both
    if machine_threshold is not None:
        for path in machine:
            for image, label, conf, _ in _rows(path, index, present, out):
                if conf < machine_threshold:
                    out.machine_below_threshold += 1
                elif label in neg.get(image, ()):
                    out.machine_overruled += 1
                else:
                    pos[image].add(label)
    out.positives, out.negatives = dict(pos), {k: v for k, v in neg.items() if v}
    return out


def negatives_implied_present(labels: SplitLabels,
                              ancestors: Sequence[np.ndarray] | None) -> int:
    """(image, class) verified negatives that a positive implies present: the class
    is an ancestor of one of the image's positives ('no Animal' beside 'Dog').
    They are kept as given; after filling, the loss sees the class as a positive."""
    if ancestors is None:
        return 0
    count = 0
    for image, negatives in labels.negatives.items():
        positives = labels.positives.get(image, ())
        implied = set().union(*(ancestors[p].tolist() for p in positives))
        count += len(negatives & implied)
    return count


def _rows(path: str, index: dict[str, int], present: set[str], out: SplitLabels):
    """(ImageID, class id, Confidence, line) of the rows of images on disk."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header != LABEL_HEADER:
            raise LocalDataError(f"{path}: header is {header!r}, not {','.join(LABEL_HEADER)}; "
                                 "is it an Open Images image-level label file?")
        for lineno, row in enumerate(reader, 2):
            if len(row) != 4:
                raise LocalDataError(f"{path}:{lineno}: expected 4 fields "
                                     f"({','.join(LABEL_HEADER)}), got {row!r}.")
            image, _, name, conf = row
            if image not in present:
                out.missing.add(image)
                continue
            out.listed.add(image)
            label = index.get(name)
            if label is None:
                out.unknown_rows += 1
                if len(out.unknown_names) < EXAMPLES_SHOWN:
                    out.unknown_names.add(name)
                continue
            try:
                value = float(conf)
            except ValueError:
                raise LocalDataError(f"{path}:{lineno}: Confidence {conf!r} is not a "
                                     "number.") from None
            yield image, label, value, lineno
