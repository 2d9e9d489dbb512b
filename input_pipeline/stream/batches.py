"""tf.data pipelines over TFDS datasets: per-host shards, training and exact evaluation.

Training: this host's shard of the split, files and examples shuffled with
a seed, repeated, preprocessed, batched. Evaluation: this host's shard in
order, padded with masked examples so every host yields the same number of
batches and every example is counted exactly once.

Every example carries `_index` (its position in this host's stream, -1 for
padding) and, until preprocessing ends, `_seed` (the stateless seed of its
random ops). `HostIterator` drops both and counts skipped corrupt records.

Skipping (`skip_corrupt`) is for records whose image does not decode: each
record is decoded on its own, so a decoding error drops that record only.
A file that cannot be read (truncated, failing its checksum) is never
skipped: retrying it would fail forever, so it stops the run with the
file's name. A stream in which `MAX_CONSECUTIVE_CORRUPT` records in a row
fail to decode stops too, instead of skipping forever.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
import tree

from input_pipeline.errors import InputPipelineError
from input_pipeline.image_ids import ImageIds
from input_pipeline.keys import INDEX_KEY, MASK_KEY, SEED_KEY
from input_pipeline.pp.builder import Preprocess
from input_pipeline.sources.core import DataSource
from input_pipeline.stream import errors as pipeline_errors
from input_pipeline.subsets import DataSubset

__all__ = ["MAX_CONSECUTIVE_CORRUPT", "HostIterator", "HostShard", "InputPipelineError",
           "eval_dataset", "records", "train_dataset"]

# More undecodable records in a row than this is not corruption but data the
# pipeline cannot read at all (wrong format or feature): stop, do not skip on.
MAX_CONSECUTIVE_CORRUPT = 1000
# The files a dataset reads, attached to it so `HostIterator` can name the
# damaged one when reading fails.
_SOURCE_FILES = "bvl_source_files"


def hide_accelerators_from_tf() -> None:
    """TensorFlow only reads data on the host: keep it off GPUs (and their memory)."""
    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # Already initialised; nothing was visible to change.
        pass


@dataclasses.dataclass(frozen=True)
class HostShard:
    """Which part of the data this process reads."""

    index: int
    count: int

    @classmethod
    def current(cls) -> HostShard:
        return cls(jax.process_index(), jax.process_count())

    def split(self, split: str) -> str:
        """This host's part of `split` (slices like 'train[:10%]' allowed)."""
        return tfds.even_splits(split, n=self.count)[self.index]


def _with_index_and_seed(ds: tf.data.Dataset, seed: int, shard: HostShard,
                         start: int = 0):
    base = np.int64(seed) * 1_000_003 + shard.index

    def add(i, ex):
        ex = dict(ex)
        ex[INDEX_KEY] = i
        ex[SEED_KEY] = tf.stack([tf.constant(base, tf.int64), i])
        return ex
    return ds.enumerate(start=start).map(add, num_parallel_calls=tf.data.AUTOTUNE)


def _decode_skipping_corrupt(ds: tf.data.Dataset, decode) -> tf.data.Dataset:
    """`decode` applied to every record; records it fails on are dropped.

    `ignore_errors` over the whole stream would also swallow read errors of
    the files below, and retry a damaged file forever. Here it wraps one
    record's decoding only; a failed record becomes a placeholder marked
    not ok, so a run of failures can be counted and bounded before the
    placeholders are filtered out.
    """
    def mark_ok(ex):
        return tf.constant(True), ex

    def attempt(ex):
        decoded = tf.data.Dataset.from_tensors(ex).map(decode)
        placeholder = tf.nest.map_structure(
            lambda s: tf.zeros([d or 0 for d in s.shape.as_list()], s.dtype),
            decoded.element_spec)
        ok = decoded.ignore_errors().map(mark_ok)
        return ok.concatenate(
            tf.data.Dataset.from_tensors((tf.constant(False), placeholder))).take(1)

    def count_failures(run, item):
        run = tf.where(item[0], tf.constant(0, tf.int64), run + 1)
        check = tf.debugging.assert_less(
            run, tf.constant(MAX_CONSECUTIVE_CORRUPT, tf.int64),
            message=f"{MAX_CONSECUTIVE_CORRUPT} records in a row could not be decoded")
        with tf.control_dependencies([check]):
            return tf.identity(run), item

    ds = ds.interleave(attempt, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.scan(tf.constant(0, tf.int64), count_failures)
    return ds.filter(_is_ok).map(_drop_flag)


def _is_ok(ok: tf.Tensor, ex: dict) -> tf.Tensor:
    return ok


def _drop_flag(ok: tf.Tensor, ex: dict) -> dict:
    return ex


def _preprocess(ds: tf.data.Dataset, pp: Preprocess, skip_corrupt: bool):
    if pp.has_decode and skip_corrupt:
        ds = _decode_skipping_corrupt(ds, pp.decode_stage)
    elif pp.has_decode:
        ds = ds.map(pp.decode_stage, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.map(pp.rest, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.map(lambda ex: {k: v for k, v in ex.items() if k != SEED_KEY})
    undefined = {"/".join(map(str, path)): spec.shape for path, spec in
                 tree.flatten_with_path(ds.element_spec)
                 if not spec.shape.is_fully_defined()}
    if undefined:
        raise InputPipelineError(
            f"after preprocessing, {sorted(undefined)} have no fixed shape "
            f"({undefined}) and cannot be batched; end the preprocessing string "
            "with keep('image', 'labels') or crop/resize to a fixed size.")
    return ds


def records(source: DataSource, split: str, shuffle_seed: int | None,
            subset: DataSubset | None = None) -> tf.data.Dataset:
    """The raw records the stream reads: files shuffled with `shuffle_seed` (None:
    in order), the subset's records kept; images still encoded."""
    ds = source.read(split, shuffle_seed=shuffle_seed,
                     with_ids=subset is not None and subset.needs_ids)
    return ds if subset is None else subset.apply(ds)


def train_dataset(source: DataSource, split: str, pp: Preprocess, local_batch_size: int,
                  seed: int, shard: HostShard | None = None,
                  shuffle_buffer: int = 10_000, skip_corrupt: bool = True,
                  start_index: int = 0, subset: DataSubset | None = None
                  ) -> tf.data.Dataset:
    """Endless shuffled batches of this host's shard of `split`.

    The stream is a pure function of the seed: `start_index` (a
    `HostIterator.state()["next_index"]` saved in a checkpoint) resumes it
    exactly where that iterator stood, by skipping records before decoding.
    `subset` (input_pipeline.subsets) keeps part of the records, before the
    shuffle, so positions count kept records only.
    """
    hide_accelerators_from_tf()
    shard = shard or HostShard.current()
    ds = records(source, shard.split(split), shuffle_seed=seed + shard.index, subset=subset)
    ds = ds.shuffle(shuffle_buffer, seed=seed + shard.index,
                    reshuffle_each_iteration=True).repeat()
    ds = _with_index_and_seed(ds.skip(start_index), seed, shard, start=start_index)
    ds = _preprocess(ds, pp, skip_corrupt)
    ds = ds.batch(local_batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    setattr(ds, _SOURCE_FILES, source.files(shard.split(split)))
    return ds


def eval_dataset(source: DataSource, split: str, pp: Preprocess, local_batch_size: int,
                 shard: HostShard | None = None, skip_corrupt: bool = True,
                 seed: int = 0, ids: ImageIds | None = None) -> tuple[tf.data.Dataset, int]:
    """This host's shard of `split` (only the images `ids` chooses, if given) once,
    padded; returns (dataset, batches).

    Every host yields the same number of batches (the largest shard's,
    rounded up); examples beyond a host's shard have `_mask` False.
    """
    hide_accelerators_from_tf()
    shard = shard or HostShard.current()
    parts = [HostShard(i, shard.count).split(split) for i in range(shard.count)]
    # With an id list every host counts every shard (a pass over the ids, nothing
    # decoded), so all agree on the number of batches without communicating.
    counts = [source.num_examples(p) if ids is None else ids.count(source, p)
              for p in parts]
    num_batches = max(1, math.ceil(max(counts) / local_batch_size))
    ds = records(source, shard.split(split), None)
    if ids is not None:
        ds = ids.apply(ds)
    ds = _with_index_and_seed(ds, seed, shard)
    ds = _preprocess(ds, pp, skip_corrupt)
    ds = ds.map(lambda ex: {**ex, MASK_KEY: tf.constant(True)})
    padding = tf.nest.map_structure(lambda s: tf.zeros(s.shape, s.dtype),
                                    ds.element_spec)
    padding[INDEX_KEY] = tf.constant(-1, tf.int64)
    padding[MASK_KEY] = tf.constant(False)
    ds = ds.concatenate(tf.data.Dataset.from_tensors(padding).repeat())
    ds = ds.take(num_batches * local_batch_size)
    ds = ds.batch(local_batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    setattr(ds, _SOURCE_FILES, source.files(shard.split(split)))
    return ds, num_batches


class HostIterator:
    """NumPy batches from a tf.data dataset; counts skipped (corrupt) records.

    `skipped` is how many records of this host's stream were dropped so far:
    positions are consecutive, so a gap below the highest position seen is a
    record the decoding stage could not read.
    """

    def __init__(self, ds: tf.data.Dataset, description: str = "input",
                 state: dict[str, int] | None = None):
        self.tf_iterator = iter(ds)
        self.description = description
        self.source_files: tuple[str, ...] = tuple(getattr(ds, _SOURCE_FILES, ()))
        state = state or {}
        self.skipped = int(state.get("skipped", 0))
        self._next_index = int(state.get("next_index", 0))
        self._seen = self._next_index - self.skipped

    def state(self) -> dict[str, int]:
        """Where the stream stands after the last batch: resume from here."""
        return {"next_index": self._next_index, "skipped": self.skipped}

    def __iter__(self) -> HostIterator:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        try:
            batch = next(self.tf_iterator)
        except tf.errors.DataLossError as e:
            raise InputPipelineError(
                pipeline_errors.explain_damaged_file(self.description, e,
                                                     self.source_files)) from None
        except tf.errors.OpError as e:
            raise InputPipelineError(
                pipeline_errors.explain(self.description, e)) from None
        batch = {k: v.numpy() for k, v in batch.items()}
        index = batch.pop(INDEX_KEY)
        real = index[index >= 0]
        if len(real):
            self._seen += len(real)
            self._next_index = max(self._next_index, int(real.max()) + 1)
            self.skipped = self._next_index - self._seen
        return batch
