"""Datasets from a user's own folder of images, named like any other dataset:

    image_folder:/data/flowers             root/<split>/<class>/<image>; 'label' ints
    image_labels:/data/photos              root/<split>/labels.csv or labels.jsonl;
                                           'labels' as in synthetic_jft (multi-label)
    image_labels:/data/photos?strict=true  a missing or undecodable image is an error
                                           (by default it is skipped and counted)

The first use writes a prepared copy into data_dir (see `common`); later uses
read it, and still read the folder's listing or label files (for the class list
and to notice a changed folder), so the folder must stay. An image_labels image
replaced in place under the same name is not noticed: delete the prepared copy.
`python -m input_pipeline.prepare --dataset image_labels:/data/photos` prepares
it and prints its label statistics.
"""

from __future__ import annotations

import urllib.parse

import tensorflow_datasets as tfds

from input_pipeline.sources.local_files import LocalDataError

FORMATS = ("image_folder", "image_labels")
OPTIONS = ("strict",)


def parse_name(name: str) -> tuple[str, str, dict[str, bool]]:
    """'image_labels:/root?strict=true' -> ('image_labels', '/root', {'strict': True})."""
    fmt, _, rest = name.partition(":")
    root, _, query = rest.partition("?")
    if fmt not in FORMATS or not root:
        raise LocalDataError(f"dataset {name!r}: give <format>:<folder>, the format one of "
                             f"{', '.join(FORMATS)}, e.g. image_folder:/data/flowers.")
    options = {}
    for key, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
        if key not in OPTIONS or value.lower() not in ("true", "false", "1", "0"):
            raise LocalDataError(f"dataset {name!r}: unknown option {key}={value}; the "
                                 f"options are {', '.join(OPTIONS)}=true|false.")
        options[key] = value.lower() in ("true", "1")
    return fmt, root, options


def get_builder(name: str, data_dir: str | None = None,
                prepare: bool = True) -> tfds.core.DatasetBuilder:
    """The prepared dataset of `name` (see the module docstring), written first if
    needed (or, with prepare=False, an error saying it is not)."""
    from input_pipeline.sources.local_formats import common
    from input_pipeline.sources.local_formats.image_folder import LocalImageFolder
    from input_pipeline.sources.local_formats.image_labels import LocalImageLabels

    fmt, root, options = parse_name(name)
    cls = LocalImageFolder if fmt == "image_folder" else LocalImageLabels
    builder = cls(root, strict=options.get("strict", False), data_dir=data_dir)
    if not builder.is_prepared():
        if not prepare:
            raise LocalDataError(f"dataset {name!r} is not prepared in {builder.data_dir}.")
        builder.download_and_prepare()
    common.check_strict(builder, options.get("strict", False))
    return builder
