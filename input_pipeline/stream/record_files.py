"""Finding the damaged file behind a TFRecord read error.

TensorFlow reports a damaged TFRecord ("truncated record at 1234",
"corrupted record at 1234") with a byte offset but no file name, and a
dataset reads many files at once. `find_damaged` narrows the split's files
down to those with a record at that offset (a walk over record headers:
one small read per record, no data read), then confirms each candidate by
reading it with TensorFlow. The offset is the record's start when its
header is bad or cut off, its data's start when the data fails its CRC.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable

import tensorflow as tf

# A record: uint64 length, uint32 CRC of the length, data, uint32 CRC of the data.
_HEADER, _FOOTER = 12, 4
_OFFSET_RE = re.compile(r"(?:truncated|corrupted) record at (\d+)")


def error_offset(message: str) -> int | None:
    """The byte offset in a TFRecord read error's message, if it names one."""
    match = _OFFSET_RE.search(message)
    return int(match.group(1)) if match else None


def _has_record_at(path: str, offset: int) -> bool:
    """Whether walking `path`'s record headers from 0 lands on a record that
    starts at `offset` or whose data does."""
    with tf.io.gfile.GFile(path, "rb") as f:
        size = f.size()
        pos = 0
        while pos < offset - _HEADER:
            f.seek(pos)
            header = f.read(8)
            if len(header) < 8:
                return False
            pos += _HEADER + struct.unpack("<Q", header)[0] + _FOOTER
        return pos in (offset, offset - _HEADER) and offset <= size


def _read_error(path: str) -> str | None:
    """The read error of `path` as TensorFlow reports it, None if it reads."""
    try:
        for _ in tf.data.TFRecordDataset(path):
            pass
    except tf.errors.DataLossError as e:
        return e.message
    return None


def find_damaged(files: Iterable[str], message: str) -> list[tuple[str, str]]:
    """(file, what is wrong) for each of `files` that fails as `message` says.

    Only files with a record boundary at the error's offset are read in full;
    without an offset in the message every file is read.
    """
    offset = error_offset(message)
    found = []
    for path in files:
        if offset is not None and not _has_record_at(path, offset):
            continue
        error = _read_error(path)
        if error is not None and (offset is None or error_offset(error) == offset):
            what = _OFFSET_RE.search(error)
            found.append((path, what.group(0) if what else error.strip()))
    return found
