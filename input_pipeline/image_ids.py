"""Choosing a split's images by their ids (COCO's minival, and the like).

Papers often train and evaluate on id lists rather than released splits: the
paper's COCO minival* is 8,000 images held out of val2014, evaluated on,
with the rest of val2014 added to training. `input.data.keep_image_ids` and
`drop_image_ids` (and the same fields in an evaluator's `data`) take such a
list: a text file with one integer id a line, or a list of ids. Records are
matched on their `image_id` feature, before decoding; the training stream's
positions count kept records only, so resuming stays exact.

TFRecords have no index by id: choosing reads the whole split it chooses from
(on COCO's train+val, 19 GB a pass), once at the start to count what is kept
and again at every pass. For a small evaluation set read often, preparing the
chosen images as a dataset of their own is cheaper.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from big_vision_like import filesystem as fs

if TYPE_CHECKING:  # evaluators read id lists too, and import no TensorFlow
    import tensorflow as tf

    from input_pipeline.sources.core import DataSource

ID_FEATURE = "image_id"
FIELDS = ("keep_image_ids", "drop_image_ids")


def load_ids(spec: Any, field: str = "exclude_ids") -> np.ndarray:
    """Image ids: None (none), the path of a text file with one integer id a line
    (what tools/near_duplicates writes), or a list of ids. `field` names the
    config field in errors."""
    if spec is None:
        return np.zeros(0, np.int64)
    if isinstance(spec, str):
        try:
            with fs.open(spec) as f:
                return np.loadtxt(f, dtype=np.int64, ndmin=1)
        except (OSError, ValueError) as e:
            raise ValueError(f"{field} {spec!r}: {e}; give a text file with one integer "
                             "image_id a line, or a list of ids.") from None
    return np.asarray(list(spec), np.int64)


@dataclasses.dataclass(frozen=True, eq=False)
class ImageIds:
    """Keep only the records whose id is in `keep` (None: all), then drop those in
    `drop` (None: none)."""

    keep: np.ndarray | None = None
    drop: np.ndarray | None = None
    # split -> records kept, so periodic evaluations count their split once.
    _counts: dict[str, int] = dataclasses.field(default_factory=dict, repr=False)

    @classmethod
    def from_config(cls, data_cfg: Mapping[str, Any], where: str = "input.data"
                    ) -> ImageIds | None:
        """The `keep_image_ids`/`drop_image_ids` fields of a data config; None when
        neither is set."""
        specs = {f: data_cfg.get(f) for f in FIELDS}
        if all(s is None for s in specs.values()):
            return None
        keep, drop = (None if specs[f] is None else load_ids(specs[f], f"{where}.{f}")
                      for f in FIELDS)
        if keep is not None and not len(keep):
            raise ValueError(f"{where}.keep_image_ids {specs['keep_image_ids']!r} lists no "
                             "id: nothing would be read; leave it unset to read every "
                             "image.")
        return cls(keep, drop)

    def describe(self) -> str:
        parts = []
        if self.keep is not None:
            parts.append(f"{len(self.keep)} listed image ids")
        if self.drop is not None:
            parts.append(f"without {len(self.drop)} listed image ids")
        return ", ".join(parts)

    def check(self, source: DataSource, where: str = "input.data") -> None:
        if ID_FEATURE not in source.info.features:
            raise ValueError(
                f"{where}: {source.name} has no '{ID_FEATURE}' feature to choose images "
                f"by (it has {sorted(source.info.features)}); unset keep_image_ids and "
                "drop_image_ids for this dataset.")

    def apply(self, ds: tf.data.Dataset) -> tf.data.Dataset:
        """Keeps the chosen raw records."""
        import tensorflow as tf

        for ids, wanted in ((self.keep, 1), (self.drop, 0)):
            if ids is not None and len(ids):
                table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
                    tf.constant(ids, tf.int64), tf.ones(len(ids), tf.int64)), 0)
                ds = ds.filter(lambda ex, table=table, wanted=wanted: tf.equal(
                    table.lookup(tf.cast(ex[ID_FEATURE], tf.int64)), wanted))
        return ds


    def count(self, source: DataSource, split: str) -> int:
        """Records of `split` kept (the split is read once; nothing is decoded)."""
        if split not in self._counts:
            self._counts[split] = count(self.apply(source.read(split)))
        return self._counts[split]


def count(ds: tf.data.Dataset) -> int:
    """Records in `ds` (read once; nothing decoded when its images are left encoded)."""
    return int(ds.reduce(np.int64(0), lambda n, _: n + 1))
