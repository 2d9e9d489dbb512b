"""Per-device memory of a train step, from XLA's memory analysis of the compiled step.

Nothing runs: the step is lowered on abstract, sharded inputs and compiled,
so any mesh the device count allows can be measured on fake CPU devices.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from big_vision_like import losses, train_step
from big_vision_like import sharding as sharding_lib
from big_vision_like.mesh import batch_sharding


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
    def init(rng):
        variables = model.init(rng, jnp.zeros((1, *input_shape)), train=False)
        return train_step.TrainState(step=jnp.zeros((), jnp.int32),
                                     params=variables["params"],
                                     batch_stats=variables.get("batch_stats", {}),
                                     opt_state=tx.init(variables["params"]))

    abstract = jax.eval_shape(init, jax.random.key(0))
    shardings = sharding_lib.named_shardings(abstract, mesh, rules)
    state = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                         abstract, shardings)
    batch_sh = batch_sharding(mesh)
    batch = {"image": jax.ShapeDtypeStruct((global_batch, *input_shape), jnp.float32,
                                           sharding=batch_sh),
             "labels": jax.ShapeDtypeStruct((global_batch, num_labels), jnp.float32,
                                            sharding=batch_sh)}
    step = train_step.jit_train_step(
        train_step.make_train_step(model, tx, losses.sigmoid_xent, mesh, num_labels),
        shardings, mesh)
    analysis = step.lower(state, batch).compile().memory_analysis()
    state_bytes = sum(
        int(jnp.dtype(x.dtype).itemsize) * _prod(s.shard_shape(x.shape))
        for x, s in zip(jax.tree.leaves(abstract), jax.tree.leaves(shardings)))
    return StepMemory(arguments=int(analysis.argument_size_in_bytes),
                      outputs=int(analysis.output_size_in_bytes),
                      temporaries=int(analysis.temp_size_in_bytes),
                      state=state_bytes)


def _prod(shape) -> int:
    out = 1
    for d in shape:
        out *= int(d)
    return out
