"""Training on part of a dataset: random data-size subsets and class subsets.

The paper's Section 4 trains on random 10M, 30M and 100M subsets of
JFT-300M, and Table 6 on the images that carry at least one of 941 chosen
labels, with the label space cut down to those labels.

Data-size subsets (`input.data.subset_fraction`, `subset_seed`): an example
is kept iff a keyed hash of its TFDS id (`<file name>__<record index>`),
mapped to [0, 1), is below the fraction. The choice depends on the example
alone, so the subset is

* nested: for one seed, the 10% subset lies inside the 30% one;
* the same for every number of hosts and every file shuffle;
* seeded: another seed gives another subset;
* never the leading slice of the stored order.

The filter runs on the raw records, before the shuffle, so resuming a stream
by skipping `start_index` records stays exact. Its size, which `*_epochs`
durations use, is counted exactly from the split's file instructions (ids
only, no record is read). The ids name files and record positions: a split
written again with other file sizes gives another subset.

Class subsets (`input.data.classes`: class ids, or a text file of ids or
names, one per line): an image is kept iff its labels, after the hierarchy's
ancestors are filled in, include at least one of the classes (the training
target then has a positive); multi-hot targets keep only those columns, in
the list's order. Evaluators reading multi-hot labels see the same columns;
their images are not filtered (every image still ranks for every class, so
mAP stays comparable with a run on all classes). Ancestors are those of
`input.hierarchy`, as the training targets' (`multi_hot`). The trainer counts
what is kept (`class_report`: images and positive image-label pairs) in one
pass over the split's labels at the start, each host over its shard (every
record is read, no image decoded); that count is the epoch's size.

Id lists (`input.data.keep_image_ids`, `drop_image_ids`): see
`input_pipeline.image_ids`; the epoch's size is then counted by reading the
split once at the start.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from big_vision_like import filesystem as fs
from input_pipeline import image_ids
from input_pipeline.hierarchy import LabelHierarchy
from input_pipeline.image_ids import ImageIds
from input_pipeline.sources.core import DataSource

ID_KEY = "tfds_id"  # what tfds.ReadConfig(add_tfds_id=True) adds
_BUCKETS = 2 ** 40  # resolution of the hash's [0, 1) value
_SALT = 0x5EB5E7  # second half of the hash key; the seed is the first
_COUNT_CHUNK = 1_000_000


class SubsetError(ValueError):
    """A subset that cannot be made: a bad fraction, unknown class, bad file."""


def check_fraction(fraction: float | None) -> float | None:
    """The fraction as a float in (0, 1]; None means the whole split."""
    if fraction is None:
        return None
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not (
            0 < fraction <= 1):
        raise SubsetError(f"input.data.subset_fraction={fraction!r}: give a number in "
                          "(0, 1] (0.1 trains on a random 10% of the split), or leave "
                          "it unset for the whole split.")
    return float(fraction)


def in_subset(ids: tf.Tensor, fraction: float, seed: int) -> tf.Tensor:
    """Whether each TFDS id (string tensor) is in the `fraction` subset of `seed`."""
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SubsetError(f"input.data.subset_seed={seed!r}: give an integer >= 0.")
    bucket = tf.strings.to_hash_bucket_strong(ids, _BUCKETS, key=[int(seed), _SALT])
    return bucket < round(fraction * _BUCKETS)


def split_ids(source: DataSource, split: str) -> list[tuple[str, int, int]]:
    """(file name, first, stop) record ranges of `split`: the TFDS ids
    `<file name>__<i>` for i in range(first, stop)."""
    return [(os.path.basename(fi.filename), fi.skip, fi.skip + fi.take)
            for fi in source.info.splits[split].file_instructions]


def subset_size(source: DataSource, split: str, fraction: float | None, seed: int = 0) -> int:
    """Examples of `split` in the subset: exact, from the ids alone (no record is
    read): 2 s per 10M examples on 2 CPU cores, about a minute for 300M."""
    fraction = check_fraction(fraction)
    total = source.num_examples(split)
    if fraction is None or fraction == 1.0:
        return total
    kept = 0
    for name, first, stop in split_ids(source, split):
        for lo in range(first, stop, _COUNT_CHUNK):
            index = tf.strings.as_string(tf.range(lo, min(stop, lo + _COUNT_CHUNK),
                                                  dtype=tf.int64))
            ids = tf.strings.join([f"{name}__", index])
            kept += int(tf.reduce_sum(tf.cast(in_subset(ids, fraction, seed), tf.int64)))
    return kept


# --- class subsets ---------------------------------------------------------


def resolve_classes(spec: str | Sequence[int | str], num_classes: int,
                    class_names: Sequence[str] | None = None) -> tuple[int, ...]:
    """Class ids from a list (ids or names) or a text file (one per line, `#`
    comments); a token that reads as an integer is an id, else a name."""
    if isinstance(spec, (str, os.PathLike)):
        if not fs.isfile(os.fspath(spec)):
            raise SubsetError(f"input.data.classes={spec!r}: no such file; give a list "
                              "of class ids or a text file with one class id or name "
                              "per line.")
        with fs.open(os.fspath(spec)) as f:
            tokens = [(f"{spec}:{n}", t) for n, line in enumerate(f, 1)
                      if (t := line.split("#", 1)[0].strip())]
    else:
        tokens = [(f"input.data.classes[{i}]", t) for i, t in enumerate(spec)]
    if not tokens:
        raise SubsetError(f"input.data.classes={spec!r} names no class.")
    index = {n: i for i, n in enumerate(class_names)} if class_names else {}
    out, seen = [], {}
    for where, token in tokens:
        c = _class_id(where, token, num_classes, index)
        if c in seen:
            raise SubsetError(f"{where}: class {token!r} is listed twice (first at "
                              f"{seen[c]}); each class is one output column.")
        seen[c] = where
        out.append(c)
    return tuple(out)


def _class_id(where: str, token, num_classes: int, index: dict[str, int]) -> int:
    try:
        c = int(token)
    except (TypeError, ValueError):
        if token in index:
            return index[token]
        hint = ("the dataset's metadata has no class names; give class ids"
                if not index else f"it is not among the dataset's {len(index)} class names")
        raise SubsetError(f"{where}: unknown class {token!r}: {hint}.") from None
    if not 0 <= c < num_classes:
        raise SubsetError(f"{where}: class id {c} is out of range [0, {num_classes}) "
                          "of the dataset's classes.")
    return c


def hit_table(classes: Sequence[int], num_classes: int,
              hierarchy: LabelHierarchy | None) -> np.ndarray:
    """Per raw label id: whether it or one of its ancestors is among `classes`
    (an image is kept iff one of its raw labels hits)."""
    chosen = np.zeros(num_classes, bool)
    chosen[list(classes)] = True
    if hierarchy is None:
        return chosen
    return np.array([chosen[a].any() for a in hierarchy.ancestors()])


def label_key(source: DataSource) -> str:
    features = source.info.features
    for key in ("labels", "label"):
        if key in features:
            return key
    raise SubsetError(f"input.data.classes: dataset {source.name} has no "
                      "'labels' or 'label' feature to choose images by.")


@dataclasses.dataclass(frozen=True)
class DataSubset:
    """The part of a training split that `input.data` asks for."""

    fraction: float | None = None
    seed: int = 0
    classes: tuple[int, ...] | None = None
    hits: np.ndarray | None = None  # hit_table(classes, ...)
    key: str = "labels"  # the raw label feature
    image_ids: ImageIds | None = None  # input.data.keep_image_ids / drop_image_ids

    @property
    def needs_ids(self) -> bool:
        return self.fraction is not None and self.fraction < 1.0

    @property
    def is_whole(self) -> bool:
        return not self.needs_ids and self.classes is None and self.image_ids is None

    def describe(self) -> str:
        parts = [self.image_ids.describe()] if self.image_ids is not None else []
        if self.needs_ids:
            parts.append(f"random {self.fraction:g} subset, seed {self.seed}")
        if self.classes is not None:
            parts.append(f"images with one of {len(self.classes)} classes")
        return "; ".join(parts) or "whole split"

    def apply(self, ds: tf.data.Dataset) -> tf.data.Dataset:
        """Keeps the subset's raw records (read with ids when `needs_ids`), drops the id."""
        if self.image_ids is not None:
            ds = self.image_ids.apply(ds)
        if self.needs_ids:
            fraction, seed = self.fraction, self.seed
            ds = ds.filter(lambda ex: in_subset(ex[ID_KEY], fraction, seed))
            ds = ds.map(lambda ex: {k: v for k, v in ex.items() if k != ID_KEY})
        if self.classes is not None:
            hits, key = tf.constant(self.hits), self.key
            ds = ds.filter(lambda ex: tf.reduce_any(tf.gather(
                hits, tf.reshape(tf.cast(ex[key], tf.int64), [-1]))))
        return ds


def from_config(data_cfg, source: DataSource, hierarchy: LabelHierarchy | None,
                num_classes: int | None) -> DataSubset:
    """The `input.data` fields subset_fraction, subset_seed and classes."""
    fraction = check_fraction(data_cfg.subset_fraction)
    seed = data_cfg.subset_seed
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise SubsetError(f"input.data.subset_seed={seed!r}: give an integer >= 0.")
    ids = ImageIds.from_config(data_cfg)
    if ids is not None:
        ids.check(source)
    spec = data_cfg.classes
    if spec is None:
        return DataSubset(fraction, seed, image_ids=ids)
    if num_classes is None:
        raise SubsetError("input.data.classes: the dataset's class count is unknown.")
    classes = resolve_classes(spec, num_classes, source.class_names)
    return DataSubset(fraction, seed, classes, hit_table(classes, num_classes, hierarchy),
                      label_key(source), ids)


@dataclasses.dataclass(frozen=True)
class SubsetReport:
    """What a subset keeps. Labels are positive image-label pairs after the
    hierarchy's ancestors are filled in: out of all classes for `*_total`,
    of the chosen classes only (the training targets) for `labels_kept`."""

    images_total: int  # in the split (after the data-size subset, if any)
    images_kept: int
    labels_total: int
    labels_kept: int
    num_classes: int  # of the dataset
    classes_kept: int

    def __add__(self, other: SubsetReport) -> SubsetReport:
        """Reports of two disjoint parts (hosts' shards) -> the report of both."""
        if (self.num_classes, self.classes_kept) != (other.num_classes, other.classes_kept):
            raise ValueError("adding reports of different class subsets")
        return dataclasses.replace(
            self, images_total=self.images_total + other.images_total,
            images_kept=self.images_kept + other.images_kept,
            labels_total=self.labels_total + other.labels_total,
            labels_kept=self.labels_kept + other.labels_kept)

    def line(self) -> str:
        pct = lambda a, b: f"{100 * a / max(b, 1):.1f}%"
        return (f"class subset: {self.classes_kept} of {self.num_classes} classes; "
                f"{self.images_kept} of {self.images_total} images "
                f"({pct(self.images_kept, self.images_total)}), {self.labels_kept} of "
                f"{self.labels_total} labels ({pct(self.labels_kept, self.labels_total)})")


def class_report(source: DataSource, split: str, subset: DataSubset,
                 hierarchy: LabelHierarchy | None, num_classes: int) -> SubsetReport:
    """Counts what `subset` keeps of `split` (a host's part allowed): one pass
    over its labels (images are not decoded)."""
    classes = subset.classes if subset.classes is not None else tuple(range(num_classes))
    key = subset.key if subset.classes is not None else label_key(source)
    anc = (hierarchy.ancestors() if hierarchy is not None
           else [np.array([c]) for c in range(num_classes)])
    table = tf.RaggedTensor.from_row_lengths(np.concatenate(anc).astype(np.int64),
                                             [len(a) for a in anc])
    chosen = tf.constant(classes, tf.int64)

    def counts(ex):
        ids = tf.reshape(tf.cast(ex[key], tf.int64), [-1])
        filled, _ = tf.unique(tf.gather(table, ids).flat_values)
        kept = tf.reduce_sum(tf.cast(tf.reduce_any(filled[:, None] == chosen[None], 0),
                                     tf.int64))
        return tf.stack([tf.constant(1, tf.int64), tf.cast(kept > 0, tf.int64),
                         tf.size(filled, tf.int64), kept])

    ds = source.read(split, with_ids=subset.needs_ids)
    ds = dataclasses.replace(subset, classes=None, hits=None).apply(ds).map(
        counts, num_parallel_calls=tf.data.AUTOTUNE)
    total = np.zeros(4, np.int64)
    for batch in ds.batch(4096).as_numpy_iterator():
        total += batch.sum(0)
    return SubsetReport(int(total[0]), int(total[1]), int(total[2]), int(total[3]),
                        num_classes, len(classes))


def class_report_all_hosts(source: DataSource, split: str, subset: DataSubset,
                           hierarchy: LabelHierarchy | None, num_classes: int,
                           shard) -> SubsetReport:
    """`class_report` of the whole split, each process counting its own shard
    (`stream.batches.HostShard`) and the counts summed over processes."""
    local = class_report(source, shard.split(split), subset, hierarchy, num_classes)
    if shard.count == 1:
        return local
    from jax.experimental import multihost_utils

    fields = ("images_total", "images_kept", "labels_total", "labels_kept")
    counts = np.array([getattr(local, f) for f in fields], np.int64)
    total = np.asarray(multihost_utils.process_allgather(counts)).reshape(-1, 4).sum(0)
    return dataclasses.replace(local, **{f: int(v) for f, v in zip(fields, total)})


def examples_per_epoch(source: DataSource, split: str, subset: DataSubset,
                       report: SubsetReport | None) -> int:
    """The training split's size as `subset` trains on it (for `*_epochs`)."""
    if report is not None:
        return report.images_kept
    if subset.image_ids is not None:  # counted by reading the split's records
        return image_ids.count(subset.apply(source.read(split, with_ids=subset.needs_ids)))
    return subset_size(source, split, subset.fraction, subset.seed)


def check_head(config, subset: DataSubset) -> None:
    """model.num_classes, where set, must be the class subset's size."""
    n = config.model.get("num_classes")  # a model's own field: not every model has it
    if subset.classes is not None and n is not None and n != len(subset.classes):
        raise SubsetError(
            f"model.num_classes={n} but input.data.classes keeps {len(subset.classes)} "
            f"classes: set --config.model.num_classes={len(subset.classes)} or leave it "
            "unset (the head then takes the subset's size).")
