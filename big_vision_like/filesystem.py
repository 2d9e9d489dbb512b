"""Paths on any filesystem: local folders, `gs://` buckets, and whatever else
TensorFlow's file system layer knows (`s3://` with tensorflow-io, `hdfs://`,
the in-memory `ram://`).

Every file the project reads or writes goes through here, never through bare
`open`/`os.makedirs`: on a TPU pod the workdir and the data live in a
bucket. Local paths use the operating system directly (appends, renames and
locks behave as POSIX says); URLs go through `tf.io.gfile`, imported only
when a URL is used so local tools do not pay for TensorFlow.

Object stores cannot append and rename by copying, so writers that append on
a local disk (metrics.jsonl) rewrite whole files there instead; see
`can_append`.
"""

from __future__ import annotations

import builtins
import errno
import os
import posixpath
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from typing import IO, Any


def is_url(path: str) -> bool:
    return "://" in os.fspath(path)


def can_append(path: str) -> bool:
    """Whether appending to a file at `path` is cheap and atomic per write:
    on a local disk yes; an object store rewrites the whole object."""
    return not is_url(path)


def _gfile():
    import tensorflow as tf  # only for URLs

    return tf.io.gfile


def join(path: str, *parts: str) -> str:
    path = os.fspath(path)
    return posixpath.join(path, *parts) if is_url(path) else os.path.join(path, *parts)


def absolute(path: str) -> str:
    """An absolute local path, or the URL as given (`os.path.abspath` would
    turn gs://b/w into ./gs:/b/w)."""
    path = os.fspath(path)
    return path if is_url(path) else os.path.abspath(path)


def normpath(path: str) -> str:
    path = os.fspath(path)
    if not is_url(path):
        return os.path.normpath(path)
    scheme, rest = path.split("://", 1)
    return f"{scheme}://{posixpath.normpath(rest)}"


def basename(path: str) -> str:
    return posixpath.basename(os.fspath(path).rstrip("/"))


def dirname(path: str) -> str:
    path = os.fspath(path).rstrip("/")
    return posixpath.dirname(path) if is_url(path) else os.path.dirname(path)


def parent(path: str, levels: int = 1) -> str:
    for _ in range(levels):
        path = dirname(path)
    return path


def open(path: str, mode: str = "r") -> IO[Any]:
    path = os.fspath(path)
    if not is_url(path):
        return builtins.open(path, mode)
    # GFile raises TensorFlow's NotFoundError, and only at the first read:
    # callers catch OSError, as for local files.
    if "r" in mode and not _gfile().exists(path):
        raise FileNotFoundError(errno.ENOENT, "No such file", path)
    return _gfile().GFile(path, mode)


def exists(path: str) -> bool:
    return _gfile().exists(path) if is_url(path) else os.path.exists(path)


def isdir(path: str) -> bool:
    return _gfile().isdir(path) if is_url(path) else os.path.isdir(path)


def isfile(path: str) -> bool:
    return exists(path) and not isdir(path)


def size(path: str) -> int:
    """A file's size in bytes, without reading it."""
    return _gfile().stat(path).length if is_url(path) else os.path.getsize(path)


def makedirs(path: str) -> None:
    if is_url(path):
        _gfile().makedirs(path)
    else:
        os.makedirs(path, exist_ok=True)


def listdir(path: str) -> list[str]:
    """Entry names, without the trailing '/' some object stores add to folders."""
    if is_url(path):
        return [n.rstrip("/") for n in _gfile().listdir(path)]
    return os.listdir(path)


def glob(pattern: str) -> list[str]:
    if is_url(pattern):
        return sorted(_gfile().glob(pattern))
    import glob as glob_lib

    return sorted(glob_lib.glob(pattern))


def remove(path: str) -> None:
    if is_url(path):
        _gfile().remove(path)
    else:
        os.remove(path)


def rmtree(path: str) -> None:
    if is_url(path):
        _gfile().rmtree(path)
    else:
        shutil.rmtree(path)


def rename(src: str, dst: str) -> None:
    """Renames a file or a folder, replacing a file at `dst`. On object stores a
    folder is copied then deleted, file by file."""
    if not is_url(src) and not is_url(dst):
        os.replace(src, dst)
    elif isdir(src):
        copy_tree(src, dst)
        rmtree(src)
    else:
        _gfile().rename(src, dst, overwrite=True)


def read_text(path: str) -> str:
    with open(path) as f:
        return f.read()


def write_atomic(path: str, data: str | bytes) -> None:
    """Writes the whole file so that a reader, or a run killed mid-write, sees
    the old content or the new, never a part (a temporary file, then a rename)."""
    makedirs(dirname(path))
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    with open(tmp, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    rename(tmp, path)


def walk_files(root: str) -> Iterator[str]:
    """Paths of the files under `root`, relative to it."""
    if is_url(root):
        for folder, _, files in _gfile().walk(root):
            rel = posixpath.relpath(folder.rstrip("/"), root.rstrip("/"))
            for name in files:
                yield name if rel == "." else posixpath.join(rel, name)
    else:
        for folder, _, files in os.walk(root):
            rel = os.path.relpath(folder, root)
            for name in files:
                yield name if rel == "." else os.path.join(rel, name)


def copy_file(src: str, dst: str) -> None:
    """Copies one file, across filesystems, creating `dst`'s folder."""
    makedirs(dirname(dst))
    if is_url(src) or is_url(dst):
        _gfile().copy(src, dst, overwrite=True)
    else:
        shutil.copy2(src, dst)


def copy_tree(src: str, dst: str) -> None:
    """Copies every file under `src` to the same place under `dst`, across
    filesystems (a local staging folder to a bucket and back)."""
    for rel in list(walk_files(src)):
        copy_file(join(src, rel), join(dst, rel))


def local_temp_dir(prefix: str) -> str:
    """A fresh local folder, for what must be staged on a local disk."""
    return tempfile.mkdtemp(prefix=prefix)
