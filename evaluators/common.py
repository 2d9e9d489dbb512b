"""What the trainer hands every evaluator."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh


@dataclasses.dataclass(frozen=True)
class EvalContext:
    """mesh; `predict(variables, images) -> (logits, outputs)` jitted for the mesh;
    `loss_fn(logits, labels, mask)`; `eval_batches(data_cfg, pp, batch_size)`
    yielding global batches (with `_mask`) of one exact, padded pass."""

    mesh: Mesh
    predict: Callable[[Any, jax.Array], tuple[jax.Array, dict]]
    loss_fn: Callable
    eval_batches: Callable[[dict, str, int], Iterator[dict[str, jax.Array]]]
    batch_size: int
    # Per-class frequency of (hierarchy-filled) labels in the training split.
    train_label_frequencies: Callable[[], np.ndarray] | None = None


def to_host(x: jax.Array) -> np.ndarray:
    """A global array as NumPy on every process (gathered across hosts if needed)."""
    if getattr(x, "is_fully_addressable", True):
        return np.asarray(x)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def collect_predictions(ctx: EvalContext, variables: Any, data_cfg: Any, pp: str,
                        batch_size: int | None = None, keys: tuple[str, ...] = ("labels",),
                        outputs: tuple[str, ...] = ("logits",)) -> dict[str, np.ndarray]:
    """One exact pass over an eval split: model outputs and batch `keys` of every
    real example (padding dropped), concatenated in dataset order."""
    pieces: dict[str, list[np.ndarray]] = {k: [] for k in (*outputs, *keys)}
    for batch in ctx.eval_batches(data_cfg, pp, batch_size or ctx.batch_size):
        logits, out = ctx.predict(variables, batch["image"])
        mask = to_host(batch["_mask"])
        for name in outputs:
            pieces[name].append(to_host(logits if name == "logits" else out[name])[mask])
        for key in keys:
            if key not in batch:
                raise KeyError(f"evaluation batches have no {key!r}; keep it in the "
                               f"evaluator's pp string (keep(..., '{key}')).")
            pieces[key].append(to_host(batch[key])[mask])
    return {k: np.concatenate(v) for k, v in pieces.items()}


def frozen_features(ctx: EvalContext, variables: Any, config: Any, data_cfg: Any
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Pre-logit features and integer 'label' of a split (for probes and few-shot)."""
    got = collect_predictions(ctx, variables, data_cfg, config.pp, config.get("batch_size"),
                              keys=("label",), outputs=("pre_logits",))
    return got["pre_logits"].astype(np.float64), got["label"].astype(np.int64)
