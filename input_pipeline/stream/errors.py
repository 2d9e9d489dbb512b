"""What the input pipeline says when reading fails: the error's first line and
what to change (a damaged file named, a likely cause of a failed op)."""

from __future__ import annotations

import re

import tensorflow as tf

from input_pipeline.stream import record_files


def explain(description: str, error: tf.errors.OpError) -> str:
    msg = first_line(error)
    if "label id out of range" in msg:
        hint = ("check that the dataset's labels and the config's num_classes "
                "agree.")
    elif "records in a row could not be decoded" in msg:
        hint = ("no image in this stretch of the data decodes: is the dataset's "
                "image feature really encoded images, and the decode op reading "
                "the right key? skip_corrupt only skips occasional corrupt images.")
    elif "is not compatible with expected shape" in msg:
        hint = ("a crop larger than the image? check the preprocessing string's "
                "sizes against the dataset's images.")
    else:
        hint = ("if this is a corrupt or undecodable image, set "
                "skip_corrupt=True in the input config to skip and count such "
                "records instead of stopping.")
    return f"{description}: the input pipeline failed: {msg}; {hint}"


def explain_damaged_file(description: str, error: tf.errors.DataLossError,
                          files: tuple[str, ...]) -> str:
    msg = first_line(error)
    found = record_files.find_damaged(files, msg)
    if found:
        what = "; ".join(f"{path} ({problem})" for path, problem in found)
        where = f"damaged data file: {what}"
    else:
        where = f"a data file is damaged ({msg})" + (
            f"; it is one of {len(files)} files, e.g. {files[0]}" if files else "")
    return (f"{description}: {where}. The file cannot be read past this point, "
            "so the run stops (skip_corrupt skips undecodable images, never "
            "unreadable files). Restore or regenerate the file (for a dataset the "
            "project generates, delete its version folder and run again), or leave "
            "it out of the split.")


def first_line(error: tf.errors.OpError) -> str:
    """The error's message without TensorFlow's function and op decorations."""
    msg = error.message.strip().splitlines()[0] if error.message else str(error)
    msg = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", msg)
    return re.sub(r"\s*\[Op:\w+\]( name: \S*)?\s*$", "", msg)
