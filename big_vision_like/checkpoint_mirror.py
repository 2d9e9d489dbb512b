"""Checkpoints on filesystems orbax cannot write to directly.

orbax writes arrays through TensorStore, which reaches local disks and
`gs://` only. For any other scheme TensorFlow's file system layer knows
(`s3://` with tensorflow-io, `hdfs://`, the in-memory `ram://` the tests
use), checkpoints are written to a local staging folder and mirrored: each
finished save is uploaded, the steps the rotation deleted are deleted, and
a run starting over an existing folder downloads it first.

A step folder is uploaded with its `commit_success.txt` last, so a folder
an upload left half-way (a preemption mid-upload) has none; it is skipped
on download, with a warning, and the run resumes from the step before.
Single-process only: the processes of a multi-host run write their shards
into one folder, which needs a filesystem they all reach (a shared disk or
gs://).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

from absl import logging

from big_vision_like import filesystem as fs

COMMITTED = "commit_success.txt"  # what orbax writes last into a finished step


def orbax_writes_directly(path: str) -> bool:
    return not fs.is_url(path) or path.startswith("gs://")


class Mirror:
    """A local staging folder for `remote`, kept equal to it after `sync()`."""

    def __init__(self, remote: str):
        self.remote = remote
        self.local = fs.local_temp_dir("bvl_checkpoints_")
        self._present: set[str] = set()  # top-level entries known to be in `remote`
        if fs.isdir(remote):
            self._download()
        else:
            fs.makedirs(remote)

    def _download(self) -> None:
        for name in fs.listdir(self.remote):
            source = fs.join(self.remote, name)
            if not fs.isdir(source):
                fs.copy_file(source, fs.join(self.local, name))
            elif name.isdigit() and not fs.exists(fs.join(source, COMMITTED)):
                logging.warning("%s has no %s: its upload was cut short; it is not used "
                                "and a new save of step %s replaces it.", source,
                                COMMITTED, name)
                continue
            else:
                fs.copy_tree(source, fs.join(self.local, name))
            self._present.add(name)

    def sync(self) -> None:
        """Uploads what is new in the staging folder and deletes from `remote` what
        is gone from it (steps the rotation deleted, or renamed)."""
        local = {n for n in fs.listdir(self.local) if ".orbax-checkpoint-tmp" not in n}
        for name in sorted(self._present - local):
            target = fs.join(self.remote, name)
            if fs.isdir(target):
                fs.rmtree(target)
            elif fs.exists(target):
                fs.remove(target)
            self._present.discard(name)
        for name in sorted(local):
            source = fs.join(self.local, name)
            if not fs.isdir(source):  # small records (resume_steps.json): always
                fs.copy_file(source, fs.join(self.remote, name))
            elif name not in self._present:
                self._upload_step(name)
            self._present.add(name)

    def _upload_step(self, name: str) -> None:
        source, target = fs.join(self.local, name), fs.join(self.remote, name)
        files = sorted(fs.walk_files(source), key=lambda rel: rel == COMMITTED)
        for rel in files:  # the commit marker last
            fs.copy_file(fs.join(source, rel), fs.join(target, rel))

    def close(self) -> None:
        shutil.rmtree(self.local, ignore_errors=True)


@contextmanager
def readable_step(path: str) -> Iterator[str]:
    """A path orbax can read for the checkpoint step folder `path`: itself, or a
    local copy of it while the context is open."""
    if orbax_writes_directly(path):
        yield path
        return
    local = fs.local_temp_dir("bvl_step_")
    try:
        if fs.isdir(path):
            fs.copy_tree(path, local)
        yield local
    finally:
        shutil.rmtree(local, ignore_errors=True)
