"""Train state and the jitted, sharded train step, the same for every task.

State is created directly in its shardings (jit with out_shardings), never
built on one device and moved. The step is jitted with the state donated,
so parameters and optimizer slots are updated in place. The model's
non-parameter collections (batch-norm statistics, whatever a head keeps)
travel in `model_state`; the step's randomness (dropout) is derived from
the seed and the step number, so a resumed run draws the same numbers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from big_vision_like import sharding as sharding_lib
from big_vision_like.mesh import batch_sharding, tracing_on
from big_vision_like.tasks.base import Task


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    model_state: Any  # non-parameter collections, e.g. {"batch_stats": ...}
    opt_state: Any

    @property
    def variables(self) -> dict[str, Any]:
        """What `model.apply` takes."""
        return {"params": self.params, **self.model_state}


def _init_fn(task: Task, tx: optax.GradientTransformation,
             image_shape: tuple[int, ...]) -> Callable[[jax.Array], TrainState]:
    def init(rng):
        variables = dict(task.init(rng, image_shape))
        params = variables.pop("params")
        return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                          model_state=variables, opt_state=tx.init(params))
    return init


def create_train_state(task: Task, tx: optax.GradientTransformation,
                       image_shape: tuple[int, ...], rng: jax.Array, mesh: Mesh,
                       rules: sharding_lib.Rules) -> tuple[TrainState, Any]:
    """Initialises the state in its shardings; returns (state, shardings)."""
    init = _init_fn(task, tx, image_shape)
    abstract = jax.eval_shape(init, rng)
    sharding_lib.check_divisible(abstract, mesh, rules)
    shardings = sharding_lib.named_shardings(abstract, mesh, rules)
    return jax.jit(init, out_shardings=shardings)(rng), shardings


def abstract_with_shardings(tree: Any, shardings: Any) -> Any:
    """ShapeDtypeStructs carrying shardings: restore targets, compile-only inputs."""
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                        tree, shardings)


def compile_abstract_step(task: Task, tx: optax.GradientTransformation, mesh: Mesh,
                          rules: sharding_lib.Rules, batch: dict[str, tuple[tuple, Any]]
                          ) -> tuple[Any, TrainState, Any]:
    """The train step compiled on abstract inputs (nothing is allocated or run), for
    memory and communication analysis. `batch` maps keys to (global shape, dtype).
    Returns (compiled, abstract state, shardings)."""
    image_shape = tuple(batch["image"][0][1:])
    abstract = jax.eval_shape(_init_fn(task, tx, image_shape), jax.random.key(0))
    shardings = sharding_lib.named_shardings(abstract, mesh, rules)
    sh = batch_sharding(mesh)
    batch = {k: jax.ShapeDtypeStruct(shape, dtype, sharding=sh)
             for k, (shape, dtype) in batch.items()}
    step = jit_train_step(make_train_step(task, tx, mesh), shardings, mesh)
    compiled = step.lower(abstract_with_shardings(abstract, shardings), batch).compile()
    return compiled, abstract, shardings


def constrain_outputs(outputs: dict[str, jax.Array], task: Task, mesh: Mesh
                      ) -> dict[str, jax.Array]:
    specs = task.output_specs(mesh)
    return {k: jax.lax.with_sharding_constraint(v, NamedSharding(mesh, specs[k]))
            if k in specs else v for k, v in outputs.items()}


def make_train_step(task: Task, tx: optax.GradientTransformation, mesh: Mesh,
                    seed: int = 0, frozen: str | None = None) -> Callable:
    """The un-jitted step: (state, batch) -> (state, metrics).

    `frozen`: a regex over parameter paths (as `optim.wrap_for_transfer` takes);
    those parameters are passed through untouched, bit for bit (adding a zero
    update would turn -0.0 into +0.0).
    """
    frozen_re = re.compile(frozen) if frozen else None

    def step(state: TrainState, batch: dict[str, jax.Array]):
        rng = jax.random.fold_in(jax.random.key(seed), state.step)
        mutable = list(state.model_state)

        def loss(params):
            with tracing_on(mesh):
                outputs, new_state = task.forward(
                    {"params": params, **state.model_state}, batch, train=True,
                    rngs={"dropout": rng}, mutable=mutable)
            value, aux = task.loss(constrain_outputs(outputs, task, mesh), batch)
            return value, (new_state, aux)

        (value, (model_state, aux)), grads = jax.value_and_grad(loss, has_aux=True)(
            state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        if frozen_re is not None:
            params = jax.tree_util.tree_map_with_path(
                lambda path, new, old: old if frozen_re.search(sharding_lib.path_str(path))
                else new, params, state.params)
        # Checked before a checkpoint is written: a finite loss can still
        # produce non-finite parameters, which must never be saved.
        finite = jnp.all(jnp.stack([jnp.isfinite(p).all() for p in jax.tree.leaves(params)]))
        metrics = {"train/loss": value, "train/grad_norm": optax.global_norm(grads),
                   "train/params_finite": finite,
                   **{f"train/{k}": v for k, v in aux.items()}}
        # Collections the model did not update this step (frozen ones) stay.
        model_state = {**state.model_state, **model_state}
        return state.replace(step=state.step + 1, params=params, model_state=model_state,
                             opt_state=opt_state), metrics
    return step


def jit_train_step(step: Callable, state_shardings: Any, mesh: Mesh) -> Callable:
    replicated = NamedSharding(mesh, P())
    return jax.jit(step, in_shardings=(state_shardings, batch_sharding(mesh)),
                   out_shardings=(state_shardings, replicated), donate_argnums=0)
