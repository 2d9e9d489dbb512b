"""`DataSource`: one prepared dataset, whatever found and prepared it.

Every dataset reaches the pipeline as a `DataSource` from a `SourceRegistry`
(`sources.registry`): the TFDS builders the project ships, the real formats
read from a local folder (VOC, COCO, Open Images), a user's image folder,
or any TFDS name already prepared. The source answers what the rest of the
pipeline asks of a dataset (classes, hierarchy, split sizes, the files a
split reads) and opens a split's raw records, images left encoded: decoding
is a preprocessing op, where a corrupt record can be skipped.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

import tensorflow as tf
import tensorflow_datasets as tfds

from big_vision_like import filesystem as fs
from input_pipeline.hierarchy import LabelHierarchy
from input_pipeline.pp.base import OpFactory


def images_undecoded(builder: tfds.core.DatasetBuilder | tfds.folder_dataset.ImageFolder
                     ) -> dict:
    """`decoders=` for `as_dataset` that leaves every image feature encoded."""
    return {k: tfds.decode.SkipDecoding() for k, f in builder.info.features.items()
            if isinstance(f, tfds.features.Image)}


@dataclasses.dataclass(frozen=True)
class DataSource:
    """A prepared dataset and what the pipeline reads of it.

    pp_ops: preprocessing ops that only make sense for this dataset (for
    synthetic_jft, its instance maps to shape families); `pp.registry`
    adds them to the standard ops for pp strings that read this source.
    """

    name: str
    builder: tfds.core.DatasetBuilder
    pp_ops: Mapping[str, OpFactory] = dataclasses.field(default_factory=dict)

    @property
    def info(self) -> tfds.core.DatasetInfo:
        return self.builder.info

    @property
    def metadata(self) -> dict[str, Any]:
        return dict(self.builder.info.metadata or {})

    @property
    def class_names(self) -> list[str] | None:
        return self.metadata.get("class_names")

    def num_classes(self, key: str | None = None) -> int | None:
        """Classes of `key`; by default 'labels' (multi-label) or else 'label'
        (single), or else, for a dataset without label features (segmentation,
        keypoints), the metadata's `class_names`; None where nothing says."""
        features = self.info.features
        if key is None:
            key = "labels" if "labels" in features else "label"
            if key not in features:
                names = self.class_names
                return len(names) if names is not None else None
        feature = features[key]
        feature = getattr(feature, "feature", feature)  # Sequence(ClassLabel)
        return int(feature.num_classes)

    def hierarchy(self) -> LabelHierarchy | None:
        """The label hierarchy stored in the dataset's metadata, if it has one."""
        meta = self.metadata
        if "hierarchy" not in meta:
            return None
        return LabelHierarchy.from_pairs(meta["hierarchy"], self.num_classes(),
                                         meta.get("class_names"))

    def num_examples(self, split: str) -> int:
        return self.info.splits[split].num_examples

    def check_split(self, split: str) -> None:
        """A ValueError naming the splits there are, for a split there is not."""
        try:
            self.info.splits[split]
        except (KeyError, ValueError) as e:
            hint = getattr(type(self.builder), "MISSING_SPLIT_HINTS", {}).get(split)
            raise ValueError(f"split {split!r} of {self.name}: {e}; it has "
                             f"{sorted(self.info.splits)}."
                             + (f" {hint}." if hint else "")) from None

    def files(self, split: str) -> tuple[str, ...]:
        """The record files `split` reads, so a read error can name the damaged one."""
        names = (fi.filename for fi in self.info.splits[split].file_instructions)
        data_dir = os.fspath(self.builder.data_dir)
        return tuple(dict.fromkeys(
            n if fs.is_url(n) or os.path.isabs(n) else fs.join(data_dir, n) for n in names))

    def read(self, split: str, *, shuffle_seed: int | None = None,
             with_ids: bool = False) -> tf.data.Dataset:
        """The raw records of `split`, images encoded; files shuffled with
        `shuffle_seed` (None: in order); `with_ids` adds each record's TFDS id
        (what data-size subsets choose by)."""
        read_config = tfds.ReadConfig(shuffle_seed=shuffle_seed, add_tfds_id=with_ids)
        return self.builder.as_dataset(split=split, shuffle_files=shuffle_seed is not None,
                                       decoders=images_undecoded(self.builder),
                                       read_config=read_config)
