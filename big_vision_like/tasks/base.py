"""What a task plugs into the one training loop.

A task owns a model (a backbone from the model registry plus its task head)
and says how a batch becomes model inputs, what the loss over the whole
batch is, which outputs are sharded how, and which named predict functions
evaluators may choose (`pred=` in an evaluator's config). The loop, the
train step, checkpointing and the evaluators are the same for every task.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from big_vision_like.registry import Registry

Batch = Mapping[str, jax.Array]
Outputs = dict[str, jax.Array]
# (outputs of the model in inference mode, batch) -> arrays for an evaluator.
PredictFn = Callable[[Outputs, Batch], dict[str, jax.Array]]


@dataclasses.dataclass(frozen=True)
class TaskContext:
    """What a task may need from the run to build itself."""

    mesh: Mesh
    num_classes: int | None = None
    models: Registry | None = None
    losses: Registry | None = None


class Task(abc.ABC):
    model: nn.Module
    # Keys of a training batch the model and loss read (checked on the first
    # batch, so a pp string that drops one fails with its name).
    batch_keys: tuple[str, ...] = ("image",)
    # Model-specific checkpoint surgery for init_from (models.ModelEntry.load).
    load: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    def example_batch(self, image_shape: tuple[int, ...]) -> dict[str, jax.Array]:
        """A batch of one, enough to initialise the model's variables."""
        return {"image": jnp.zeros((1, *image_shape), jnp.float32)}

    def model_inputs(self, batch: Batch, train: bool) -> tuple[tuple, dict]:
        """(args, kwargs) the model is called with."""
        return (batch["image"],), {"train": train}

    def outputs(self, raw: Any) -> Outputs:
        """The model's return value as a dict of named arrays."""
        return raw

    def init(self, rng: jax.Array, image_shape: tuple[int, ...]) -> dict[str, Any]:
        args, kwargs = self.model_inputs(self.example_batch(image_shape), train=False)
        return self.model.init({"params": rng, "dropout": rng}, *args, **kwargs)

    def forward(self, variables: Any, batch: Batch, *, train: bool,
                rngs: dict[str, jax.Array] | None = None, mutable: Any = False) -> Any:
        """Outputs; with `mutable` (a list of collections), (outputs, new collections)."""
        args, kwargs = self.model_inputs(batch, train)
        result = self.model.apply(variables, *args, **kwargs, rngs=rngs, mutable=mutable)
        if mutable is False:
            return self.outputs(result)
        raw, new = result
        return self.outputs(raw), new

    @abc.abstractmethod
    def loss(self, outputs: Outputs, batch: Batch) -> tuple[jax.Array, dict[str, jax.Array]]:
        """(scalar loss over the batch's real examples (`_mask`), auxiliary metrics)."""

    def output_specs(self, mesh: Mesh) -> dict[str, P]:
        """Sharding constraints on named outputs inside the train step."""
        return {}

    def predict_fns(self) -> dict[str, PredictFn]:
        """Named predictions; 'predict' is the default evaluators use."""
        return {"predict": lambda outputs, batch: outputs}
