"""`image_labels:<root>`: multi-label images listed in a CSV or JSONL file per split.

The layout and label-file syntax are in `label_files`. The features are those of
synthetic_jft that a pre-training config reads ('image', 'image_id', 'labels' as
class ids), plus 'image/filename', so a config swaps one for the other by name.
The metadata holds `class_names` and, with a hierarchy file, `hierarchy` (child,
parent id pairs) for `input.hierarchy = "dataset"`; the stored labels already
have their ancestors filled in. Images listed but missing, or that do not decode,
are skipped and counted (`skipped_images` in the metadata, and logged); with
?strict=true each is an error.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds

from input_pipeline.sources.local_formats import common, label_files

NAME = "local_image_labels"


class LocalImageLabels(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Images + labels.csv / labels.jsonl per split, written as a TFDS dataset."""

    name = NAME
    VERSION = common.VERSION
    RELEASE_NOTES = {"1.0.0": "First release."}  # noqa: RUF012 (TFDS API)

    def __init__(self, root: str, strict: bool = False, *, data_dir: str | None = None):
        self._root = os.path.abspath(os.path.expanduser(root))
        self._strict = strict
        self._source = label_files.read_source(self._root)
        fingerprint = common.fingerprint_files(self._source.files, self._root)
        config = tfds.core.BuilderConfig(
            name=common.config_name(self._root, fingerprint),
            description=f"Images and label files of {self._root}.")
        super().__init__(data_dir=data_dir, config=config)

    def _info(self) -> tfds.core.DatasetInfo:
        names = self._source.class_names
        h = self._source.hierarchy
        metadata = tfds.core.MetadataDict(source=self._root, class_names=list(names),
                                          skipped_images={})
        if h is not None:
            metadata["hierarchy"] = [[c, p] for c, ps in enumerate(h.parents) for p in ps]
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(),  # the file's bytes, as they are
                "image_id": np.int64,
                "labels": tfds.features.Sequence(tfds.features.ClassLabel(names=names)),
                "image/filename": tfds.features.Text(),
            }),
            metadata=metadata,
            description=(f"Multi-label images listed in the label files of {self._root}; "
                         "labels include their ancestors where a hierarchy is given."),
        )

    def _split_generators(self, dl_manager) -> dict:
        return {split: self._generate_examples(split) for split in self._source.splits}

    def _generate_examples(self, split: str) -> Iterator[tuple[int, dict]]:
        index = {n: i for i, n in enumerate(self._source.class_names)}
        h = self._source.hierarchy
        ancestors = h.ancestors() if h is not None else None
        skips = common.SkipCounter(f"image_labels:{self._root}", split, self._strict)
        split_dir = os.path.join(self._root, split)
        for image_id, row in enumerate(self._source.splits[split]):
            data = skips.read(os.path.join(split_dir, row.image), f"{split}/{row.image}")
            if data is None:
                continue
            ids = [index[lab] for lab in row.labels]
            if ancestors is not None:
                ids = [int(a) for i in ids for a in ancestors[i]]
            yield image_id, {"image": data, "image_id": image_id,
                             "labels": sorted(set(ids)), "image/filename": row.image}
        self.info.metadata["skipped_images"][split] = skips.report()
