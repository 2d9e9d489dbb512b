"""How each family of datasets is found and prepared: one class per policy.

    Generated        the project's own builders: written on first use, offline
    FromManualFolder real datasets written from the files a user extracted
                     into a folder (TFDS's manual_dir); never downloaded
    LocalFolder      a user's image folder ('image_folder:/root'): a prepared
                     copy named by a fingerprint of the folder
    Prepared         any other TFDS name: it must already be prepared

A kind names the module that defines its TFDS builder and, where the dataset
has ops of its own, the module whose `OPS` lists them; both are imported when
a dataset of the kind is opened, not before.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping

import tensorflow_datasets as tfds

from big_vision_like import filesystem as fs
from input_pipeline.errors import InputPipelineError
from input_pipeline.pp.base import OpFactory
from input_pipeline.sources import source_fingerprint
from input_pipeline.sources.local_files import LocalDataError


class SourceKind:
    """A family of datasets: how its builder is found and how it is prepared."""

    def __init__(self, builder_module: str | None = None, pp_ops_module: str | None = None):
        self.builder_module = builder_module
        self.pp_ops_module = pp_ops_module

    def pp_ops(self) -> Mapping[str, OpFactory]:
        if self.pp_ops_module is None:
            return {}
        return dict(importlib.import_module(self.pp_ops_module).OPS)

    def declared_splits(self, name: str) -> tuple[str, ...] | None:
        """The splits `name`'s builder can write (its class's `SPLITS`), known without
        any data; None where the builder does not say (a local folder's splits are
        its subfolders; a TFDS dataset's are in its prepared info)."""
        if self.builder_module is None:
            return None
        importlib.import_module(self.builder_module)
        cls = tfds.builder_cls(name.split("/")[0].split(":")[0])
        return tuple(getattr(cls, "SPLITS", ())) or None

    def builder(self, name: str, data_dir: str | None, *, prepare: bool,
                manual_dir: str | None, on_source_change: str = "refuse"
                ) -> tfds.core.DatasetBuilder:
        """The prepared builder of `name`, prepared first if `prepare` allows.
        `on_source_change` (datasets prepared from a folder): see FromManualFolder."""
        builder = self._tfds_builder(name, data_dir)
        if builder.is_prepared():
            return builder
        if not prepare:
            raise _not_prepared(name, builder)
        self.prepare(builder, name, manual_dir)
        return builder

    def _tfds_builder(self, name: str, data_dir: str | None) -> tfds.core.DatasetBuilder:
        if self.builder_module is not None:
            importlib.import_module(self.builder_module)  # registers it with TFDS
        try:
            return tfds.builder(name, data_dir=data_dir)
        except ValueError as e:
            raise InputPipelineError(f"dataset {name!r}: {_config_hint(name) or e}") from e

    def prepare(self, builder: tfds.core.DatasetBuilder, name: str,
                manual_dir: str | None) -> None:
        raise NotImplementedError


class Prepared(SourceKind):
    """Any TFDS dataset: prepared beforehand (`tfds build`), never here."""

    def prepare(self, builder, name, manual_dir):
        raise _not_prepared(name, builder)


class Generated(SourceKind):
    """The project's builders: generating them needs no download."""

    def prepare(self, builder, name, manual_dir):
        builder.download_and_prepare()


class FromManualFolder(SourceKind):
    """Real datasets written from their extracted files in `manual_dir` (default:
    TFDS's `<data_dir>/downloads/manual` when it holds files).

    The folder is fingerprinted when the dataset is prepared, and a prepared
    dataset is reused only while its folder is unchanged (source_fingerprint):
    on a change `on_source_change` says what to do: "refuse" (an error saying
    what changed), "reprepare" (write it again) or "accept" (keep the prepared
    copy and take the folder as it is now)."""

    def builder(self, name, data_dir, *, prepare, manual_dir, on_source_change="refuse"):
        if on_source_change not in ("refuse", "reprepare", "accept"):
            raise ValueError(f"on_source_change={on_source_change!r}: use refuse, "
                             "reprepare or accept.")
        built = self._tfds_builder(name, data_dir)
        if not built.is_prepared():  # the builder's own errors say what a folder lacks
            if not prepare:
                raise _not_prepared(name, built)
            self.prepare(built, name, manual_dir)
            return built
        if manual_dir is not None and not (fs.isdir(manual_dir) and fs.listdir(manual_dir)):
            raise InputPipelineError(
                f"dataset {name!r}: --manual_dir {manual_dir} is empty or missing; give "
                "the folder the dataset's archives were extracted into.")
        folder = manual_dir or self._default_folder(built)
        prepared_dir = os.fspath(built.data_dir)
        if on_source_change == "accept":
            saved = source_fingerprint.recorded(prepared_dir)
            folder = folder or (saved or {}).get("folder")
            if folder and fs.isdir(folder):
                source_fingerprint.record(prepared_dir, folder, name)
            return built
        if on_source_change == "reprepare" and prepare:
            fs.rmtree(prepared_dir)
            built = self._tfds_builder(name, data_dir)
            self.prepare(built, name, manual_dir)
            return built
        try:
            source_fingerprint.check(prepared_dir, name, folder,
                                     os.fspath(built.data_dir_root))
        except source_fingerprint.SourceChangedError as e:
            raise InputPipelineError(str(e)) from None
        return built

    @staticmethod
    def _default_folder(builder) -> str | None:
        default = fs.join(os.fspath(builder.data_dir_root), "downloads", "manual")
        return default if fs.isdir(default) and fs.listdir(default) else None

    def prepare(self, builder, name, manual_dir):
        default = fs.join(os.fspath(builder.data_dir_root), "downloads", "manual")
        if manual_dir is None:
            manual_dir = self._default_folder(builder)
        if manual_dir is None:
            raise InputPipelineError(
                f"dataset {name!r} is not prepared in data_dir={builder.data_dir!r}. It "
                "is written from the dataset's extracted files, never downloaded: run "
                f"`python -m input_pipeline.prepare --dataset {name} --data_dir "
                f"{builder.data_dir_root} --manual_dir FOLDER`, or put the files in "
                f"{default}.\n{builder.MANUAL_DOWNLOAD_INSTRUCTIONS}")
        config = tfds.download.DownloadConfig(manual_dir=manual_dir)
        try:
            builder.download_and_prepare(download_config=config)
        except LocalDataError as e:
            raise InputPipelineError(f"dataset {name!r}: {e}") from e
        source_fingerprint.record(os.fspath(builder.data_dir), manual_dir, name)


class LocalFolder(SourceKind):
    """'image_folder:/root', 'image_labels:/root?strict=true' (local_formats): the
    folder is read into a prepared copy whose name holds its fingerprint, so a
    changed folder is prepared again, never read stale."""

    def builder(self, name, data_dir, *, prepare, manual_dir, on_source_change="refuse"):
        from input_pipeline.sources import local_formats

        return local_formats.get_builder(name, data_dir, prepare)


def _not_prepared(name: str, builder) -> InputPipelineError:
    return InputPipelineError(
        f"dataset {name!r} is not prepared in data_dir={builder.data_dir!r}; "
        f"prepare it first (`tfds build {name} --data_dir=...`) or point "
        "data_dir at the folder that holds it.")


def _config_hint(name: str) -> str | None:
    """'use one of ...' for a misspelt config of a known builder (TFDS's own
    message offers an empty list of close matches)."""
    family, _, config = name.partition("/")
    try:
        configs = [c.name for c in tfds.builder_cls(family.split(":")[0]).BUILDER_CONFIGS]
    except Exception:  # an unknown builder: TFDS's message says so
        return None
    if not config or config.split(":")[0] in configs:
        return None
    return (f"{family} has no config {config!r}; use one of "
            f"{', '.join(f'{family}/{c}' for c in configs)}.")
