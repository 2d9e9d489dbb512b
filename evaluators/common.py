"""What the trainer hands every evaluator."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import jax
import numpy as np
from jax.sharding import Mesh

from input_pipeline.keys import MASK_KEY

# Metrics computed without the evaluation images that near-duplicate a
# pre-training image (the paper's Appendix A) carry this suffix.
DEDUP_SUFFIX = "_dedup"
T = TypeVar("T")
IMAGE_ID_KEY = "image_id"


@dataclasses.dataclass(frozen=True)
class EvalContext:
    """mesh; `predict_fns`: the task's named predictions, each jitted for the mesh as
    `fn(variables, batch) -> dict of arrays` (an evaluator picks one with `pred=` in
    its config); `batch_loss(variables, batch) -> {"loss_sum", "count"}`;
    `eval_batches(data_cfg, pp, batch_size)` yielding global batches (with `_mask`) of
    one exact, padded pass."""

    mesh: Mesh
    predict_fns: Mapping[str, Callable[[Any, dict], dict[str, jax.Array]]]
    batch_loss: Callable[[Any, dict], dict[str, jax.Array]]
    eval_batches: Callable[[dict, str, int], Iterator[dict[str, jax.Array]]]
    batch_size: int
    # Per-class frequency of (hierarchy-filled) labels in the training split.
    train_label_frequencies: Callable[[], np.ndarray] | None = None
    # The metadata of the dataset a `data` config reads (class names, ...).
    dataset_metadata: Callable[[Any], Mapping[str, Any]] | None = None
    # The class subset trained on (input.data.classes) and the dataset's class
    # count: multi-hot labels hold these columns of the full label space.
    classes: tuple[int, ...] | None = None
    all_classes: int | None = None

    def predict_fn(self, name: str) -> Callable[[Any, dict], dict[str, jax.Array]]:
        if name not in self.predict_fns:
            raise KeyError(f"unknown predict function pred={name!r}; this task has "
                           f"{sorted(self.predict_fns)}.")
        return self.predict_fns[name]


def to_host(x: jax.Array) -> np.ndarray:
    """A global array as NumPy on every process (gathered across hosts if needed)."""
    if getattr(x, "is_fully_addressable", True):
        return np.asarray(x)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def collect_predictions(ctx: EvalContext, variables: Any, data_cfg: Any, pp: str,
                        batch_size: int | None = None, keys: tuple[str, ...] = ("labels",),
                        outputs: tuple[str, ...] = ("logits",), pred: str = "predict"
                        ) -> dict[str, np.ndarray]:
    """One exact pass over an eval split: the `outputs` of predict function `pred` and
    batch `keys` of every real example (padding dropped), in dataset order."""
    predict = ctx.predict_fn(pred)
    pieces: dict[str, list[np.ndarray]] = {k: [] for k in (*outputs, *keys)}
    for batch in ctx.eval_batches(data_cfg, pp, batch_size or ctx.batch_size):
        out = predict(variables, batch)
        mask = to_host(batch[MASK_KEY])
        for name in outputs:
            if name not in out:
                raise KeyError(f"predict function {pred!r} gives {sorted(out)}, not "
                               f"{name!r}; choose another with pred=... in the evaluator.")
            pieces[name].append(to_host(out[name])[mask])
        for key in keys:
            if key not in batch:
                raise KeyError(f"evaluation batches have no {key!r}; keep it in the "
                               f"evaluator's pp string (keep(..., '{key}')).")
            pieces[key].append(to_host(batch[key])[mask])
    return {k: np.concatenate(v) for k, v in pieces.items()}


def dedup_subsets(image_ids: np.ndarray | None, excluded: np.ndarray
                  ) -> dict[str, np.ndarray | None]:
    """Metric-name suffix -> boolean mask of the examples a metric is computed on:
    '' keeps all (mask None); with excluded ids, '_dedup' keeps the others."""
    subsets: dict[str, np.ndarray | None] = {"": None}
    if len(excluded):
        if image_ids is None:
            raise KeyError("exclude_ids needs each example's 'image_id'; keep it in the "
                           "evaluator's pp string (keep(..., 'image_id')).")
        subsets[DEDUP_SUFFIX] = ~np.isin(np.asarray(image_ids), excluded)
    return subsets


def dedup_items(items: Sequence[T], image_ids: np.ndarray | None, excluded: np.ndarray
                ) -> list[tuple[str, Sequence[T]]]:
    """[(metric suffix, per-image records to score)]: all of `items`, then, with
    excluded ids, '_dedup' and the items whose image id (same order) is not excluded."""
    return [(suffix, items if keep is None else [x for x, k in zip(items, keep) if k])
            for suffix, keep in dedup_subsets(image_ids, excluded).items()]


def frozen_features(ctx: EvalContext, variables: Any, config: Any, data_cfg: Any
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Pre-logit features and integer 'label' of a split (for probes and few-shot)."""
    got = collect_predictions(ctx, variables, data_cfg, config.pp, config.batch_size,
                              keys=("label",), outputs=("pre_logits",), pred=config.pred)
    return got["pre_logits"].astype(np.float64), got["label"].astype(np.int64)
