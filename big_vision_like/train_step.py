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


def _init_fn(model: nn.Module, tx: optax.GradientTransformation,
             image_shape: tuple[int, ...]) -> Callable[[jax.Array], TrainState]:
    def init(rng):
        variables = model.init(rng, jnp.zeros((1, *image_shape), jnp.float32), train=False)
        params = variables["params"]
        return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                          batch_stats=variables.get("batch_stats", {}),
                          opt_state=tx.init(params))
    return init


def create_train_state(model: nn.Module, tx: optax.GradientTransformation,
                       image_shape: tuple[int, ...], rng: jax.Array, mesh: Mesh,
                       rules: sharding_lib.Rules) -> tuple[TrainState, Any]:
    """Initialises the state in its shardings; returns (state, shardings)."""
    init = _init_fn(model, tx, image_shape)
    abstract = jax.eval_shape(init, rng)
    sharding_lib.check_divisible(abstract, mesh, rules)
    shardings = sharding_lib.named_shardings(abstract, mesh, rules)
    return jax.jit(init, out_shardings=shardings)(rng), shardings


def abstract_with_shardings(tree: Any, shardings: Any) -> Any:
    """ShapeDtypeStructs carrying shardings: restore targets, compile-only inputs."""
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                        tree, shardings)


def compile_abstract_step(model: nn.Module, tx: optax.GradientTransformation, mesh: Mesh,
                          rules: sharding_lib.Rules, image_shape: tuple[int, ...],
                          global_batch: int, num_labels: int, loss_fn: LossFn
                          ) -> tuple[Any, TrainState, Any]:
    """The train step compiled on abstract inputs (nothing is allocated or run), for
    memory and communication analysis. Returns (compiled, abstract state, shardings)."""
    abstract = jax.eval_shape(_init_fn(model, tx, image_shape), jax.random.key(0))
    shardings = sharding_lib.named_shardings(abstract, mesh, rules)
    sh = batch_sharding(mesh)
    batch = {"image": jax.ShapeDtypeStruct((global_batch, *image_shape), jnp.float32,
                                           sharding=sh),
             "labels": jax.ShapeDtypeStruct((global_batch, num_labels), jnp.float32,
                                            sharding=sh)}
    step = jit_train_step(make_train_step(model, tx, loss_fn, mesh, num_labels),
                          shardings, mesh)
    compiled = step.lower(abstract_with_shardings(abstract, shardings), batch).compile()
    return compiled, abstract, shardings


def round_up_classes(num_classes: int, mesh: Mesh) -> int:
    """Head width: num_classes rounded up to a multiple of the `model` axis.

    18,291 (JFT) is odd, so no mesh of 2, 4 or 8 model shards divides it; the
    extra columns are masked out of the loss and the predictions.
    """
    m = mesh.shape[MODEL]
    return -(-num_classes // m) * m


def mask_padded_classes(logits: jax.Array, num_classes: int) -> jax.Array:
    """Padded head columns get a logit of -1e9: zero loss, zero gradient, never ranked."""
    if logits.shape[-1] == num_classes:
        return logits
    valid = jnp.arange(logits.shape[-1]) < num_classes
    return jnp.where(valid, logits, jnp.asarray(-1e9, logits.dtype))


def make_train_step(model: nn.Module, tx: optax.GradientTransformation,
                    loss_fn: LossFn, mesh: Mesh, num_classes: int | None = None) -> Callable:
    """The un-jitted step: (state, batch) -> (state, metrics).

    `num_classes` (the labels' width) may be below the head's width, see
    `round_up_classes`.
    """
    logits_sharding = NamedSharding(mesh, P(DATA, MODEL))

    def step(state: TrainState, batch: dict[str, jax.Array]):
        def loss(params):
            (logits, _), new_vars = model.apply(
                {"params": params, "batch_stats": state.batch_stats},
                batch["image"], train=True, mutable=["batch_stats"])
            # Each device keeps its (examples, classes) block of the logits:
            # the loss of a class-sharded head never gathers all classes.
            logits = jax.lax.with_sharding_constraint(logits, logits_sharding)
            labels = batch["labels"]
            if num_classes is not None and logits.shape[-1] > num_classes:
                logits = mask_padded_classes(logits, num_classes)
                labels = jnp.pad(labels, ((0, 0), (0, logits.shape[-1] - num_classes)))
            return loss_fn(logits, labels, batch.get("_mask")), new_vars["batch_stats"]

        (value, batch_stats), grads = jax.value_and_grad(loss, has_aux=True)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        # Checked before a checkpoint is written: a finite loss can still
        # produce non-finite parameters, which must never be saved.
        finite = jnp.all(jnp.stack([jnp.isfinite(p).all() for p in jax.tree.leaves(params)]))
        metrics = {"train/loss": value, "train/grad_norm": optax.global_norm(grads),
                   "train/params_finite": finite}
        return state.replace(step=state.step + 1, params=params, batch_stats=batch_stats,
                             opt_state=opt_state), metrics
    return step


def jit_train_step(step: Callable, state_shardings: Any, mesh: Mesh) -> Callable:
    replicated = NamedSharding(mesh, P())
    return jax.jit(step, in_shardings=(state_shardings, batch_sharding(mesh)),
                   out_shardings=(state_shardings, replicated), donate_argnums=0)
