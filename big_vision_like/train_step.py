"""Train state and the jitted, sharded train step.

State is created directly in its shardings (jit with out_shardings), never
built on one device and moved. The step is jitted with the state donated,
so parameters and optimizer slots are updated in place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from big_vision_like import sharding as sharding_lib
from big_vision_like.mesh import DATA, MODEL, batch_sharding

LossFn = Callable[[jax.Array, jax.Array, jax.Array | None], jax.Array]


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any


def create_train_state(model: nn.Module, tx: optax.GradientTransformation,
                       image_shape: tuple[int, ...], rng: jax.Array, mesh: Mesh,
                       rules: sharding_lib.Rules) -> tuple[TrainState, Any]:
    """Initialises the state in its shardings; returns (state, shardings)."""
    def init(rng):
        variables = model.init(rng, jnp.zeros((1, *image_shape), jnp.float32), train=False)
        params = variables["params"]
        return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                          batch_stats=variables.get("batch_stats", {}),
                          opt_state=tx.init(params))

    abstract = jax.eval_shape(init, rng)
    sharding_lib.check_divisible(abstract, mesh, rules)
    shardings = sharding_lib.named_shardings(abstract, mesh, rules)
    return jax.jit(init, out_shardings=shardings)(rng), shardings


def make_train_step(model: nn.Module, tx: optax.GradientTransformation,
                    loss_fn: LossFn, mesh: Mesh) -> Callable:
    """The un-jitted step: (state, batch) -> (state, metrics)."""
    logits_sharding = NamedSharding(mesh, P(DATA, MODEL))

    def step(state: TrainState, batch: dict[str, jax.Array]):
        def loss(params):
            (logits, _), new_vars = model.apply(
                {"params": params, "batch_stats": state.batch_stats},
                batch["image"], train=True, mutable=["batch_stats"])
            # Each device keeps its (examples, classes) block of the logits:
            # the loss of a class-sharded head never gathers all classes.
            logits = jax.lax.with_sharding_constraint(logits, logits_sharding)
            return loss_fn(logits, batch["labels"], batch.get("_mask")), new_vars["batch_stats"]

        (value, batch_stats), grads = jax.value_and_grad(loss, has_aux=True)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {"train/loss": value, "train/grad_norm": optax.global_norm(grads)}
        return state.replace(step=state.step + 1, params=params, batch_stats=batch_stats,
                             opt_state=opt_state), metrics
    return step


def jit_train_step(step: Callable, state_shardings: Any, mesh: Mesh) -> Callable:
    replicated = NamedSharding(mesh, P())
    return jax.jit(step, in_shardings=(state_shardings, batch_sharding(mesh)),
                   out_shardings=(state_shardings, replicated), donate_argnums=0)
