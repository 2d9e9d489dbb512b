"""`image_folder:<root>`: single-label images, one sub-folder per class.

    root/<split>/<class>/<image>.{jpg,jpeg,png}     e.g. root/train/daisy/001.jpg

TFDS's own `tfds.folder_dataset.ImageFolder` reads the folder: which files are
images, the class names (sorted, over all splits) and their ids, each split's
examples in its deterministic order. It reads the image files at every pass and
takes whole splits only, while the pipeline slices splits per host and
shuffles files with a seed; so its examples are written once into a prepared
dataset with the same features ('image', 'label', 'image/filename', the name
relative to root), minus images that do not decode (counted in the metadata's
`skipped_images`; an error with ?strict=true).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

import tensorflow_datasets as tfds

from input_pipeline.sources.core import images_undecoded
from input_pipeline.sources.local_files import LocalDataError
from input_pipeline.sources.local_formats import common

NAME = "local_image_folder"
LAYOUT = ("Expected root/<split>/<class>/<image>.jpg (or .jpeg, .png), e.g. "
          "root/train/daisy/001.jpg and root/test/daisy/104.jpg.")


def listing_fingerprint(root: str) -> str:
    """Names, sizes and modification times of the split/class/image files:
    an image added, removed or replaced gives another prepared copy."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        depth = os.path.relpath(dirpath, root).count(os.sep)
        if depth >= 1 and dirpath != root:
            for f in sorted(filenames):
                st = os.stat(os.path.join(dirpath, f))
                h.update(f"{os.path.relpath(dirpath, root)}/{f}\0{st.st_size}\0"
                         f"{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


class LocalImageFolder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """A prepared copy of `tfds.folder_dataset.ImageFolder(root)`."""

    name = NAME
    VERSION = common.VERSION
    RELEASE_NOTES = {"1.0.0": "First release."}  # noqa: RUF012 (TFDS API)

    def __init__(self, root: str, strict: bool = False, *, data_dir: str | None = None):
        self._root = os.path.abspath(os.path.expanduser(root))
        self._strict = strict
        if not os.path.isdir(self._root):
            raise LocalDataError(f"image_folder: {self._root} is not a folder. {LAYOUT}")
        self._folder = tfds.folder_dataset.ImageFolder(self._root)
        if not self._folder.info.features["label"].names:
            raise LocalDataError(f"image_folder: no class folders with images under "
                                 f"{self._root}. {LAYOUT}")
        config = tfds.core.BuilderConfig(
            name=common.config_name(self._root, listing_fingerprint(self._root)),
            description=f"Images of {self._root}.")
        super().__init__(data_dir=data_dir, config=config)

    def _info(self) -> tfds.core.DatasetInfo:
        names = self._folder.info.features["label"].names
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(),  # the file's bytes, as they are
                "label": tfds.features.ClassLabel(names=names),
                "image/filename": tfds.features.Text(),
            }),
            supervised_keys=("image", "label"),
            metadata=tfds.core.MetadataDict(
                source=self._root, class_names=list(names), skipped_images={}),
            description=f"Single-label images from the class folders of {self._root}.",
        )

    def _split_generators(self, dl_manager) -> dict:
        return {split: self._generate_examples(split) for split in self._folder.info.splits}

    def _generate_examples(self, split: str) -> Iterator[tuple[str, dict]]:
        skips = common.SkipCounter(f"image_folder:{self._root}", split, self._strict)
        ds = self._folder.as_dataset(split=split, decoders=images_undecoded(self._folder))
        for ex in tfds.as_numpy(ds):
            name = os.path.relpath(ex["image/filename"].decode(), self._root)
            problem = common.image_problem(ex["image"])
            if problem is not None:
                skips.bad("unreadable", name, problem)
                continue
            yield name, {"image": ex["image"], "label": int(ex["label"]),
                         "image/filename": name}
        self.info.metadata["skipped_images"][split] = skips.report()
