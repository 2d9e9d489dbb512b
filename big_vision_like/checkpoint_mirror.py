"""Checkpoints on filesystems orbax cannot write to directly.

orbax writes arrays through TensorStore, which reaches local disks and
`gs://` only. For any other scheme TensorFlow's file system layer knows
(`s3://` with tensorflow-io, `hdfs://`, the in-memory `ram://` the tests
use), checkpoints are written to a local staging folder and mirrored: each
finished save is uploaded, the steps the rotation deleted are deleted, and
a run starting over an existing folder downloads it first: every step's
metadata and input state, but the arrays of a step only once it is
restored (a run resumes from one step; the others are there for the
rotation, `keep_ckpt_every_steps` and going back, and may be many).

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
STATE = "state"  # the item of a step holding the arrays (see checkpointing)
# Files of a step's arrays at least this large stay in the remote folder until
# the step is restored; smaller ones (orbax's metadata) are downloaded at once.
DEFER_BYTES = 1 << 20


def orbax_writes_directly(path: str) -> bool:
    return not fs.is_url(path) or path.startswith("gs://")


class Mirror:
    """A local staging folder for `remote`, kept equal to it after `sync()`."""

    def __init__(self, remote: str):
        self.remote = remote
        self.local = fs.local_temp_dir("bvl_checkpoints_")
        self._present: set[str] = set()  # top-level entries known to be in `remote`
        # Step folder -> its files (relative) not downloaded yet; and local
        # folder -> the remote folder it was renamed from, for those files.
        self._deferred: dict[str, list[str]] = {}
        self._renamed: dict[str, str] = {}
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
                self._download_step(name)
            self._present.add(name)

    def _download_step(self, name: str) -> None:
        source, deferred = fs.join(self.remote, name), []
        for rel in sorted(fs.walk_files(source)):
            path = fs.join(source, rel)
            if rel.startswith(STATE + "/") and fs.size(path) >= DEFER_BYTES:
                deferred.append(rel)
            else:
                fs.copy_file(path, fs.join(self.local, name, rel))
        if deferred:
            self._deferred[name] = deferred

    def fetch(self, name: str) -> None:
        """Downloads the rest of step folder `name`, before orbax reads it."""
        for rel in self._deferred.get(name, []):
            fs.copy_file(fs.join(self.remote, name, rel), fs.join(self.local, name, rel))
        self._deferred.pop(name, None)

    def rename(self, name: str, new_name: str) -> None:
        """Renames a top-level entry of the staging folder; the next `sync`
        renames it in `remote`, what was never downloaded included."""
        fs.rename(fs.join(self.local, name), fs.join(self.local, new_name))
        self._renamed[new_name] = self._renamed.pop(name, name)
        if name in self._deferred:
            self._deferred[new_name] = self._deferred.pop(name)

    def sync(self) -> None:
        """Uploads what is new in the staging folder and deletes from `remote` what
        is gone from it (steps the rotation deleted, or renamed)."""
        local = {n for n in fs.listdir(self.local) if ".orbax-checkpoint-tmp" not in n}
        # Uploads first: a renamed step's files that were never downloaded are
        # copied from its old remote folder before that one is deleted.
        for name in sorted(local):
            source = fs.join(self.local, name)
            if not fs.isdir(source):  # small records (resume_steps.json): always
                fs.copy_file(source, fs.join(self.remote, name))
            elif name not in self._present:
                self._upload_step(name)
            self._present.add(name)
        self._renamed.clear()
        for name in sorted(self._present - local):
            target = fs.join(self.remote, name)
            if fs.isdir(target):
                fs.rmtree(target)
            elif fs.exists(target):
                fs.remove(target)
            self._present.discard(name)
            self._deferred.pop(name, None)

    def _upload_step(self, name: str) -> None:
        source, target = fs.join(self.local, name), fs.join(self.remote, name)
        old = fs.join(self.remote, self._renamed.get(name, name))
        for rel in self._deferred.get(name, []):
            fs.copy_file(fs.join(old, rel), fs.join(target, rel))
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
