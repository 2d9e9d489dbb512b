"""What the trainer hands every evaluator."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import jax
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
