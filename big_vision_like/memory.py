"""Per-device memory of a train step, from XLA's memory analysis of the compiled step.

Nothing runs: the step is lowered on abstract, sharded inputs and compiled,
so any mesh the device count allows can be measured on fake CPU devices.
"""

from __future__ import annotations

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from big_vision_like import sharding as sharding_lib
from big_vision_like import train_step
from big_vision_like.tasks.classification import ClassificationTask


class HeadOnly(nn.Module):
    """The classification head alone, fed pre-logit features: isolates its memory."""

    num_classes: int

    @nn.compact
    def __call__(self, features, train: bool = False):
        logits = nn.Dense(self.num_classes, name="head")(features)
        return logits, {}


@dataclasses.dataclass(frozen=True)
class StepMemory:
    arguments: int  # bytes per device: state (params, optimizer slots) + batch
    outputs: int
    temporaries: int
    state: int  # bytes per device of the state alone, from the shardings


def train_step_memory(model: nn.Module, tx: optax.GradientTransformation, mesh: Mesh,
                      rules: sharding_lib.Rules, input_shape: tuple[int, ...],
                      global_batch: int, num_labels: int) -> StepMemory:
    compiled, abstract, shardings = train_step.compile_abstract_step(
        ClassificationTask(model, num_labels), tx, mesh, rules,
        {"image": ((global_batch, *input_shape), jnp.float32),
         "labels": ((global_batch, num_labels), jnp.float32)})
    analysis = compiled.memory_analysis()
    state_bytes = sum(
        int(jnp.dtype(x.dtype).itemsize) * math.prod(s.shard_shape(x.shape))
        for x, s in zip(jax.tree.leaves(abstract), jax.tree.leaves(shardings)))
    return StepMemory(arguments=int(analysis.argument_size_in_bytes),
                      outputs=int(analysis.output_size_in_bytes),
                      temporaries=int(analysis.temp_size_in_bytes),
                      state=state_bytes)

