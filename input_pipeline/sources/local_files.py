"""Finding the files of a dataset the user extracted into a local folder.

The builders that read real datasets (VOC 2012, COCO) never download: the user
extracts the official archives into a folder and passes it as TFDS's
`manual_dir` (`python -m input_pipeline.prepare --manual_dir ...`). These
helpers locate the dataset's root inside that folder and turn missing files
into errors that name the file and say what to do.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from typing import Any


class LocalDataError(ValueError):
    """A file of a locally extracted dataset is missing or malformed; the
    message names it and says what to do."""


def manual_dir_of(dl_manager, instructions: str) -> str:
    """The folder the user extracted the dataset into (TFDS's manual_dir)."""
    # TFDS's own property raises a bare AssertionError for an empty folder.
    try:
        return os.fspath(dl_manager.manual_dir)
    except AssertionError as e:
        raise LocalDataError(f"{e}".split("\n")[0] + " " + instructions) from None


def find_root(manual_dir: str, candidates: Sequence[str], required: Sequence[str],
              dataset: str, instructions: str) -> str:
    """The first `manual_dir/candidate` that holds every path in `required`.

    Users extract archives one level deeper or shallower than a builder
    expects; trying the usual depths spares them a rename.
    """
    tried = []
    for sub in candidates:
        root = os.path.normpath(os.path.join(manual_dir, sub))
        tried.append(root)
        if all(os.path.exists(os.path.join(root, r)) for r in required):
            return root
    raise LocalDataError(
        f"{dataset}: found no {' and '.join(required)} under "
        f"{' or '.join(dict.fromkeys(tried))}. {instructions}")


def require_files(paths: Iterable[str], what: str, fix: str) -> None:
    """Raises naming the missing files (the first few and how many) if any is absent.

    Checked before any example is written, so a months-old partial extraction
    fails in seconds instead of after an hour of encoding.
    """
    paths = list(paths)
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more"
                                          if len(missing) > 5 else "")
        raise LocalDataError(
            f"{what}: {len(missing)} of {len(paths)} files missing ({shown}). {fix}")


def read_json(path: str, fix: str) -> Any:
    """The parsed json file; an unreadable or truncated one is named with `fix`."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise LocalDataError(f"{path} cannot be read ({e}); {fix}") from None


def check_image_size(path: str, height: int, width: int, source: str, fix: str) -> None:
    """Raises when the image file is not the size its annotation (`source`) gives.

    Normalised coordinates are pixel coordinates over that size: a mismatch
    would shift every box silently. Reads the header only.
    """
    from PIL import Image  # only the readers of real datasets need it

    with Image.open(path) as f:
        if (f.height, f.width) != (height, width):
            raise LocalDataError(
                f"{path} is {f.height}x{f.width} but {source} says {height}x{width} "
                f"(height x width); {fix}")


def check_coco_box(json_path: str, annotation: dict, fix: str) -> None:
    """An annotation's `bbox` is [x, y, width, height] of finite numbers with width
    and height >= 0, and its `area` (if any) a finite number >= 0; else an error
    naming the file, the annotation id and the value (json allows strings, NaN
    and negative sizes, which would become boxes silently)."""
    def number(v: Any) -> bool:
        return (isinstance(v, (int, float)) and not isinstance(v, bool)
                and math.isfinite(v))

    box, ann_id = annotation.get("bbox"), annotation.get("id")
    if not (isinstance(box, list) and len(box) == 4 and all(map(number, box))):
        raise LocalDataError(f"{json_path}: annotation {ann_id} has bbox {box!r}, not "
                             f"[x, y, width, height] of finite numbers; {fix}")
    if box[2] < 0 or box[3] < 0:
        raise LocalDataError(f"{json_path}: annotation {ann_id} has bbox {box!r} with a "
                             f"negative width or height; {fix}")
    area = annotation.get("area")
    if area is not None and not (number(area) and area >= 0):
        raise LocalDataError(f"{json_path}: annotation {ann_id} has area {area!r}, not a "
                             f"finite number >= 0; {fix}")
