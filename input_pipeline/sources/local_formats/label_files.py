"""Reading the label files of the `image_labels` format (no TensorFlow here).

    root/
      classes.txt              optional: the class list, one name a line, in id order;
                               a label not in it is an error
      hierarchy.txt            optional: `child parent` class names a line (# comments;
                               names without spaces: use the JSON for those),
      | hierarchy.json           or Open Images' nested {"LabelName", "Subcategory"} JSON
      <split>/labels.csv       header `image,labels`; labels separated by `|`
      | <split>/labels.jsonl   {"image": "a.jpg", "labels": ["cat", "animal"]} a line
      <split>/<images>         paths in the label files are relative to <split>/

Without classes.txt the classes are every name in the label files and the
hierarchy, sorted. `|` separates labels so that names may hold spaces
("traffic light"); an empty labels field is an image without labels.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os

from input_pipeline.hierarchy import HierarchyError, LabelHierarchy
from input_pipeline.sources.local_files import LocalDataError

LABEL_FILES = ("labels.csv", "labels.jsonl")
DELIMITER = "|"
CLASSES_FILE = "classes.txt"
HIERARCHY_FILES = ("hierarchy.txt", "hierarchy.json")
LAYOUT = ("Expected root/<split>/labels.csv (header image,labels; labels separated by "
          "'|') or root/<split>/labels.jsonl ({\"image\": ..., \"labels\": [...]} a "
          "line), images under root/<split>/, optional root/classes.txt and "
          "root/hierarchy.txt or .json.")


@dataclasses.dataclass(frozen=True)
class Row:
    image: str  # relative to the split folder
    labels: tuple[str, ...]
    where: str  # file:line, for errors


@dataclasses.dataclass(frozen=True)
class Source:
    """Everything the label files say, checked."""

    root: str
    splits: dict[str, tuple[Row, ...]]
    class_names: tuple[str, ...]
    hierarchy: LabelHierarchy | None
    files: tuple[str, ...]  # every file read: what the prepared copy depends on


def label_file_of(split_dir: str) -> str | None:
    found = [os.path.join(split_dir, f) for f in LABEL_FILES
             if os.path.isfile(os.path.join(split_dir, f))]
    if len(found) > 1:
        raise LocalDataError(f"image_labels: {split_dir} has both {' and '.join(LABEL_FILES)}; "
                             "keep one.")
    return found[0] if found else None


def source_files(root: str) -> dict[str, str]:
    """{split: its label file} and the optional class and hierarchy files present
    (under the keys '' + name), without parsing them."""
    if not os.path.isdir(root):
        raise LocalDataError(f"image_labels: {root} is not a folder. {LAYOUT}")
    files = {s: f for s in sorted(os.listdir(root)) if os.path.isdir(os.path.join(root, s))
             and (f := label_file_of(os.path.join(root, s)))}
    if not files:
        raise LocalDataError(f"image_labels: no split folder with {' or '.join(LABEL_FILES)} "
                             f"under {root}. {LAYOUT}")
    present = [n for n in HIERARCHY_FILES if os.path.isfile(os.path.join(root, n))]
    if len(present) > 1:
        raise LocalDataError(f"image_labels: {root} has {' and '.join(present)}; keep one.")
    for extra in (CLASSES_FILE, *present):
        if os.path.isfile(os.path.join(root, extra)):
            files[":" + extra] = os.path.join(root, extra)
    return files


def read_source(root: str) -> Source:
    files = source_files(root)
    splits = {s: read_labels(f) for s, f in files.items() if not s.startswith(":")}
    given = read_classes(files[":" + CLASSES_FILE]) if ":" + CLASSES_FILE in files else None
    hierarchy_file = next((files[":" + n] for n in HIERARCHY_FILES if ":" + n in files), None)
    if given is None:
        names = {lab for rows in splits.values() for r in rows for lab in r.labels}
        if hierarchy_file:
            names |= hierarchy_names(hierarchy_file)
        class_names = tuple(sorted(names))
    else:
        class_names = given
        known = set(given)
        unknown = [(r.where, lab) for rows in splits.values() for r in rows
                   for lab in r.labels if lab not in known]
        if unknown:
            shown = ", ".join(f"{lab!r} ({w})" for w, lab in unknown[:5])
            raise LocalDataError(
                f"image_labels: {len(unknown)} labels are not in {files[':' + CLASSES_FILE]}: "
                f"{shown}{' ...' if len(unknown) > 5 else ''}. Add them to the class list, "
                "fix their spelling, or remove classes.txt to take the classes from "
                "the label files.")
    if not class_names:
        raise LocalDataError(f"image_labels: the label files under {root} name no class.")
    hierarchy = None
    if hierarchy_file:
        try:
            if hierarchy_file.endswith(".json"):
                hierarchy = LabelHierarchy.from_open_images_json(hierarchy_file, class_names)
            else:
                hierarchy = LabelHierarchy.from_pairs_file(hierarchy_file,
                                                           class_names=class_names)
        except HierarchyError as e:
            raise LocalDataError(f"image_labels: {hierarchy_file}: {e}") from None
    return Source(root, splits, class_names, hierarchy, tuple(files.values()))


def read_labels(path: str) -> tuple[Row, ...]:
    rows = _read_csv(path) if path.endswith(".csv") else _read_jsonl(path)
    first: dict[str, str] = {}
    for r in rows:
        if r.image in first:
            raise LocalDataError(f"image_labels: {r.image} is listed twice ({first[r.image]} "
                                 f"and {r.where}); give each image one line with all "
                                 "its labels.")
        first[r.image] = r.where
    return tuple(rows)


def _read_csv(path: str) -> list[Row]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"image", "labels"} <= set(reader.fieldnames):
            raise LocalDataError(f"image_labels: {path} has header {reader.fieldnames}; it "
                                 "needs the columns image,labels.")
        rows = []
        for record in reader:
            where = f"{path}:{reader.line_num}"
            if not record["image"]:
                raise LocalDataError(f"image_labels: {where} has no image name.")
            labels = (record["labels"] or "").split(DELIMITER)
            rows.append(Row(record["image"], _clean(labels, where), where))
    return rows


def _read_jsonl(path: str) -> list[Row]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise LocalDataError(f"image_labels: {where} is not JSON ({e}).") from None
            if (not isinstance(record, dict) or not isinstance(record.get("image"), str)
                    or not isinstance(record.get("labels"), list)
                    or not all(isinstance(x, str) for x in record["labels"])):
                raise LocalDataError(f"image_labels: {where} should be "
                                     '{"image": "a.jpg", "labels": ["cat", ...]}, got '
                                     f"{line.strip()[:100]}.")
            rows.append(Row(record["image"], _clean(record["labels"], where), where))
    return rows


def _clean(labels: list[str], where: str) -> tuple[str, ...]:
    out = tuple(dict.fromkeys(x.strip() for x in labels if x.strip()))
    if any("\n" in x for x in out):
        raise LocalDataError(f"image_labels: {where}: a label holds a line break.")
    return out


def read_classes(path: str) -> tuple[str, ...]:
    with open(path, encoding="utf-8") as f:
        names = [line.strip() for line in f if line.strip()]
    seen: set[str] = set()
    dups = [n for n in names if n in seen or seen.add(n)]
    if dups:
        raise LocalDataError(f"image_labels: {path} lists {dups[:5]} more than once; "
                             "each class once, in id order.")
    return tuple(names)


def hierarchy_names(path: str) -> set[str]:
    """The class names a hierarchy file mentions (the JSON's root excepted: Open
    Images' 'Entity' is not a class)."""
    if path.endswith(".json"):
        with open(path, encoding="utf-8") as f:
            root = json.load(f)
        names: set[str] = set()
        stack = list(root.get("Subcategory", []))
        while stack:
            node = stack.pop()
            names.add(node["LabelName"])
            stack.extend(node.get("Subcategory", []))
        return names
    with open(path, encoding="utf-8") as f:
        return {tok for line in f for tok in line.split("#", 1)[0].split()}
