"""What a dataset prepared from extracted files was prepared from, checked on reuse.

A dataset written from a user's folder (VOC, COCO, Open Images: TFDS's
manual_dir) is a copy: adding an image or a fixed annotation file to the
folder does not change it. At preparation the folder is fingerprinted (each
file's path, size and modification time, summarised per top-level entry)
into `<prepared dataset>/source_fingerprint.json`; opening the dataset again
compares the folder with it (when the folder is still there) and a change
stops with what changed and the two ways on: prepare again, or keep the
prepared copy. The check stats every file (about 1 s per 100K files).
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from big_vision_like import filesystem as fs

FILE = "source_fingerprint.json"
ROOT_ENTRY = "."  # files directly in the folder


class SourceChangedError(ValueError):
    """The folder a prepared dataset was written from has changed since."""


def describe(folder: str) -> dict[str, list]:
    """Top-level entry -> [files, bytes, digest of (path, size, mtime) of each file]."""
    rows: dict[str, list[tuple[str, int, int]]] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, folder)
            st = os.stat(path)
            top = rel.split(os.sep, 1)[0] if os.sep in rel else ROOT_ENTRY
            rows.setdefault(top, []).append((rel, st.st_size, st.st_mtime_ns))
    out = {}
    for top, files in sorted(rows.items()):
        digest = hashlib.sha256(json.dumps(sorted(files)).encode()).hexdigest()
        out[top] = [len(files), sum(size for _, size, _ in files), digest]
    return out


def record(prepared_dir: str, folder: str, builder_name: str) -> None:
    """Written after a successful preparation from `folder`."""
    fs.write_atomic(fs.join(prepared_dir, FILE), json.dumps(
        {"folder": os.path.abspath(folder), "builder": builder_name,
         "entries": describe(folder)}, indent=1))


def recorded(prepared_dir: str) -> dict[str, Any] | None:
    path = fs.join(prepared_dir, FILE)
    return json.loads(fs.read_text(path)) if fs.exists(path) else None


def changes(old: dict[str, list], new: dict[str, list]) -> list[str]:
    """One line per top-level entry that differs."""
    lines = []
    for top in sorted(set(old) | set(new)):
        if top not in new:
            lines.append(f"{top}: gone ({old[top][0]} files)")
        elif top not in old:
            lines.append(f"{top}: new ({new[top][0]} files)")
        elif old[top] != new[top]:
            (n0, b0, _), (n1, b1, _) = old[top], new[top]
            what = (f"{n0} -> {n1} files" if n0 != n1 else f"{n1} files")
            lines.append(f"{top}: {what}, {b0} -> {b1} bytes" if b0 != b1 else
                         f"{top}: {what}, same size, files modified or renamed")
    return lines


def check(prepared_dir: str, name: str, folder: str | None, data_dir: str) -> None:
    """Raises SourceChangedError if the folder (`folder`, else the recorded one, if it
    still exists) differs from what `name` was prepared from."""
    saved = recorded(prepared_dir)
    if saved is None:
        return  # prepared before fingerprints were kept, or by hand
    folder = folder or saved["folder"]
    if not os.path.isdir(folder):
        return  # the extracted files were removed after preparing: nothing to compare
    diff = changes(saved["entries"], describe(folder))
    if diff:
        command = (f"python -m input_pipeline.prepare --dataset {name} --data_dir "
                   f"{data_dir} --manual_dir {folder}")
        raise SourceChangedError(
            f"dataset {name!r} in {prepared_dir} was prepared from {folder}, which has "
            f"changed since: {'; '.join(diff[:5])}"
            + (f" (and {len(diff) - 5} more)" if len(diff) > 5 else "")
            + f". Prepare it again (`{command} --reprepare`), or keep the prepared "
            f"copy as it is (`{command} --accept_source`).")
