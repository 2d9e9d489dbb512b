"""`RunData`: a run's datasets, as a config names them, for training and evaluation.

    data = RunData(config, mesh)
    batches = data.train_iterator(data_state)        # global arrays, sharded on data
    for batch in data.eval_batches(cfg.data, cfg.pp, batch_size): ...

The one place a config's `input` becomes data: the training source (found
and prepared through `sources`), its label hierarchy, the subset trained on
(`subsets`), the preprocessing context and op registry (`pp`), and the
per-host streams (`stream`). The trainer, the analysis helpers and the
tools all read data through it, so they see the same classes, the same
subset and the same preprocessing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import jax
import ml_collections
import numpy as np
import tensorflow as tf
from absl import logging

from big_vision_like import mesh as mesh_lib
from big_vision_like.registry import Registry
from input_pipeline import image_ids, subsets
from input_pipeline.hierarchy import LabelHierarchy
from input_pipeline.image_ids import ImageIds
from input_pipeline.pp import registry as pp_registry
from input_pipeline.pp.base import OpFactory, PPContext
from input_pipeline.pp.builder import Preprocess, build_preprocess
from input_pipeline.sources.core import DataSource
from input_pipeline.sources.registry import SourceRegistry, default_registry
from input_pipeline.stream import batches
from input_pipeline.stream.device import DevicePrefetcher


def load_hierarchy(spec: str | None, source: DataSource) -> LabelHierarchy | None:
    """'dataset' (its metadata), 'none', a child-parent file or Open Images JSON."""
    if spec in ("dataset", "none", "", None):
        return source.hierarchy() if spec == "dataset" else None
    names = source.class_names
    if spec.endswith(".json"):
        if names is None:
            raise ValueError(f"hierarchy {spec}: an Open Images hierarchy names classes; "
                             "the dataset's metadata has no class_names to map them.")
        return LabelHierarchy.from_open_images_json(spec, names)
    return LabelHierarchy.from_pairs_file(spec, num_classes=source.num_classes(),
                                          class_names=names)


class RunData:
    """The config's datasets, preprocessing and batching, for train and eval.

    source: the training dataset; num_classes: the classes trained on (the
    class subset's size when there is one; None for dense labels only);
    pp_ctx: what preprocessing ops know of the classes; subset and
    subset_report: the part of the split trained on; train_examples: its size
    (what `*_epochs` durations count).
    """

    def __init__(self, config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh,
                 sources: SourceRegistry | None = None):
        self.config, self.mesh = config, mesh
        self.sources = sources or default_registry()
        inp = config.input
        self.source = self.sources.open(inp.data.name, inp.data.data_dir)
        full = self.source.num_classes()  # None: dense labels only
        hierarchy = load_hierarchy(inp.hierarchy, self.source)
        self.subset = subsets.from_config(inp.data, self.source, hierarchy, full)
        classes = self.subset.classes
        self.num_classes = full if classes is None else len(classes)
        self.pp_ctx = PPContext(num_classes=full, hierarchy=hierarchy, classes=classes)
        self.shard = batches.HostShard.current()
        self.subset_report = None if classes is None else subsets.class_report_all_hosts(
            self.source, inp.data.split, self.subset, hierarchy, full, self.shard)
        self.train_examples = subsets.examples_per_epoch(
            self.source, inp.data.split, self.subset, self.subset_report)
        if not self.subset.is_whole:
            logging.info("training on %d of the %d examples of %s[%s] (%s)",
                         self.train_examples, self.source.num_examples(inp.data.split),
                         inp.data.name, inp.data.split, self.subset.describe())
        if self.subset_report is not None:
            logging.info("%s", self.subset_report.line())
        self._frequencies: np.ndarray | None = None
        self._eval_sources: dict[str, DataSource] = {inp.data.name: self.source}
        self._eval_ids: dict[tuple[str, ...], ImageIds | None] = {}
        # Called before each evaluation batch; raises to stop the evaluation (the
        # trainer's preemption watch; every process calls it at the same batches).
        self.interrupt: Callable[[], None] | None = None

    def pp_registry(self, source: DataSource | None = None) -> Registry[OpFactory]:
        """The standard ops and those of `source` (default: the training source)."""
        return pp_registry.default_registry((source or self.source).pp_ops)

    def preprocess(self, spec: str, source: DataSource | None = None) -> Preprocess:
        """`spec` built for `source` (default: the training source)."""
        return build_preprocess(spec, self.pp_registry(source), self.pp_ctx)

    def train_label_frequencies(self) -> np.ndarray:
        """Fraction of training images carrying each class (ancestors filled in), over
        the subset trained on."""
        if self._frequencies is None:
            pp = self.preprocess("multi_hot|keep('labels')")
            ds = self.source.read(self.config.input.data.split,
                                  with_ids=self.subset.needs_ids)
            ds = self.subset.apply(ds).map(lambda ex: pp.rest(dict(ex)),
                                           num_parallel_calls=tf.data.AUTOTUNE)
            counts = np.zeros(self.num_classes)
            n = 0
            for batch in ds.batch(4096).as_numpy_iterator():
                counts += batch["labels"].sum(0)
                n += len(batch["labels"])
            self._frequencies = counts / max(n, 1)
        return self._frequencies

    def local(self, global_batch: int) -> int:
        """This process's part of a global batch."""
        if global_batch % (self.shard.count * self.mesh.shape[mesh_lib.DATA]):
            raise ValueError(
                f"batch_size {global_batch} must be divisible by the {self.shard.count} "
                f"processes and the data axis ({self.mesh.shape[mesh_lib.DATA]} devices).")
        return global_batch // self.shard.count

    def train_iterator(self, data_state: dict | None) -> DevicePrefetcher:
        """The training stream from `data_state` (a checkpoint's input position; None:
        the start), as global batches sharded over the mesh's data axis."""
        inp = self.config.input
        ds = batches.train_dataset(
            self.source, inp.data.split, self.preprocess(inp.pp),
            self.local(self.config.batch_size), seed=self.config.seed, shard=self.shard,
            shuffle_buffer=inp.shuffle_buffer, skip_corrupt=inp.skip_corrupt,
            start_index=int((data_state or {}).get("next_index", 0)), subset=self.subset)
        host = batches.HostIterator(ds, f"train input {inp.data.name}", state=data_state)
        return DevicePrefetcher(host, mesh_lib.batch_sharding(self.mesh),
                                size=inp.prefetch)

    def eval_source(self, data_cfg) -> DataSource:
        """An evaluator's dataset: the training one unless `data_cfg.name` says
        otherwise (a transfer target, beside the training data by default)."""
        name = data_cfg.get("name") or self.config.input.data.name
        if name not in self._eval_sources:
            data_dir = data_cfg.get("data_dir") or self.config.input.data.data_dir
            self._eval_sources[name] = self.sources.open(name, data_dir)
        return self._eval_sources[name]

    def metadata(self, data_cfg) -> dict[str, Any]:
        return self.eval_source(data_cfg).metadata

    def check_eval_input(self, data_cfg, pp_spec: str) -> None:
        """The dataset, split and pp string an evaluator will read, checked before the
        first training step rather than hours later."""
        source = self.eval_source(data_cfg)
        self.preprocess(pp_spec, source)
        source.check_split(data_cfg.split)
        self.eval_ids(data_cfg)

    def eval_ids(self, data_cfg) -> ImageIds | None:
        """The images an evaluator's id lists choose (None: all), loaded once."""
        key = (str(data_cfg.get("name")), str(data_cfg.split),
               *(repr(data_cfg.get(f)) for f in image_ids.FIELDS))
        if key not in self._eval_ids:
            ids = ImageIds.from_config(data_cfg, "evaluator data")
            if ids is not None:
                ids.check(self.eval_source(data_cfg), "evaluator data")
            self._eval_ids[key] = ids
        return self._eval_ids[key]

    def eval_batches(self, data_cfg, pp_spec: str, batch_size: int
                     ) -> Iterator[dict[str, jax.Array]]:
        """One padded pass over an evaluator's split (`_mask` marks real examples)."""
        source = self.eval_source(data_cfg)
        ds, _ = batches.eval_dataset(
            source, data_cfg.split, self.preprocess(pp_spec, source),
            self.local(batch_size), shard=self.shard,
            skip_corrupt=self.config.input.skip_corrupt, ids=self.eval_ids(data_cfg))
        with DevicePrefetcher(batches.HostIterator(ds, f"eval input {source.name}"),
                              mesh_lib.batch_sharding(self.mesh)) as it:
            for batch in it:
                if self.interrupt is not None:
                    self.interrupt()
                yield batch
