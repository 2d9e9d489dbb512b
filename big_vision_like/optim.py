"""Optimizers by name from a config's `optimizer` field; freezing and lr multipliers.

    tx = build_optimizer(config.optimizer, schedule, frozen=config.frozen,
                         lr_mults=config.lr_mults)

The optimizers (`default_optimizer_registry()`): `rmsprop` (the paper's JFT
recipe, TF1 semantics), `momentum` (its ImageNet recipe; SGD with
`momentum=0`), `adamw`. Fields every optimizer honours, and the run's
freezing and multipliers:

- `grad_clip_norm`: clip the gradient's global norm (over the trained
  parameters) before anything else, weight decay included.
- `weight_decay`, on kernels only: L2 regularisation for rmsprop and
  momentum (wd * w added to the gradient, as the paper's TensorFlow models
  do); decoupled for adamw (wd * lr * w subtracted, as in AdamW).
- `frozen` (config.frozen): a regex; parameters whose '/'-joined path it matches
  (re.search) are not updated, take no weight decay and hold no optimizer
  state. Fine-tuning is `init_from` plus this.
- `lr_mults` (config.lr_mults): ((regex, mult), ...); the first rule that matches a
  parameter's path scales its updates, unmatched parameters get 1.0.

A regex in `frozen` or `lr_mults` that matches no parameter is an error,
raised when the optimizer is initialised with the parameters.

A new optimizer is a function `(cfg, schedule) -> optax.GradientTransformation`
(weight decay included) registered under a name in a registry passed to
`build_optimizer`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax

from big_vision_like.config import schema
from big_vision_like.registry import Registry
from big_vision_like.sharding import path_str

OptimizerFactory = Callable[[Mapping[str, Any], optax.ScalarOrSchedule],
                            optax.GradientTransformation]


def weight_decay_mask(params: Any, pattern: str = r"kernel$") -> Any:
    """True for parameters that take weight decay (kernels; not BN or biases)."""
    regex = re.compile(pattern)
    return jax.tree_util.tree_map_with_path(lambda p, _: bool(regex.search(path_str(p))),
                                            params)


def _l2(cfg: Mapping[str, Any], opt: optax.GradientTransformation
        ) -> optax.GradientTransformation:
    if not cfg["weight_decay"]:
        return opt
    return optax.chain(optax.add_decayed_weights(cfg["weight_decay"], mask=weight_decay_mask),
                       opt)


def rmsprop(cfg: Mapping[str, Any], lr: optax.ScalarOrSchedule
            ) -> optax.GradientTransformation:
    # TF1's RMSProp: mean square starts at 1, eps inside the sqrt.
    return _l2(cfg, optax.rmsprop(lr, decay=cfg["decay"], eps=cfg["eps"],
                                  momentum=cfg["momentum"], initial_scale=1.0,
                                  eps_in_sqrt=True))


def momentum(cfg: Mapping[str, Any], lr: optax.ScalarOrSchedule
             ) -> optax.GradientTransformation:
    return _l2(cfg, optax.sgd(lr, momentum=cfg["momentum"], nesterov=cfg["nesterov"]))


def adamw(cfg: Mapping[str, Any], lr: optax.ScalarOrSchedule) -> optax.GradientTransformation:
    return optax.adamw(lr, b1=cfg["b1"], b2=cfg["b2"], eps=cfg["eps"],
                       weight_decay=cfg["weight_decay"], mask=weight_decay_mask)


def default_optimizer_registry() -> Registry[OptimizerFactory]:
    reg: Registry[OptimizerFactory] = Registry("optimizer")
    reg.register("rmsprop", rmsprop)
    reg.register("momentum", momentum)
    reg.register("adamw", adamw)
    return reg


def build_optimizer(cfg: Mapping[str, Any], schedule: optax.ScalarOrSchedule,
                    registry: Registry[OptimizerFactory] | None = None, *,
                    frozen: str | None = None,
                    lr_mults: Iterable[tuple[str, float]] | None = None
                    ) -> optax.GradientTransformation:
    """The optimizer `cfg.name` with clipping, freezing, lr mults; its fields and their
    defaults are the schema's (config/schema.py OPTIMIZERS).

    `frozen` and `lr_mults` are the run's (`config.frozen`, `config.lr_mults`),
    not fields of `cfg`: the model must see the same `frozen` to run frozen
    batch norms in inference mode. Without either, the optimizer state has the
    same structure as the bare optimizer's (checkpoints stay compatible).
    """
    for field in ("frozen", "lr_mults"):
        if cfg.get(field):
            raise ValueError(f"optimizer.{field}: set config.{field} instead, so the model "
                             "and the optimizer freeze the same parameters.")
    cfg = schema.optimizer(cfg)
    registry = registry or default_optimizer_registry()
    tx = registry.get(cfg["name"])(cfg, schedule)
    if cfg["grad_clip_norm"]:
        tx = optax.chain(optax.clip_by_global_norm(cfg["grad_clip_norm"]), tx)
    return wrap_for_transfer(tx, frozen, lr_mults)


def _compile(pattern: str, what: str) -> re.Pattern:
    try:
        return re.compile(pattern)
    except re.error as e:
        raise ValueError(f"{what} {pattern!r} is not a valid regex: {e}.") from None


def _paths(tree: Any) -> list[str]:
    return [path_str(p) for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def _require_matches(regex: re.Pattern, paths: list[str], what: str) -> None:
    # A typo would otherwise silently freeze (or scale) nothing.
    if not any(regex.search(p) for p in paths):
        sample = ", ".join(paths[:8]) + (", ..." if len(paths) > 8 else "")
        raise ValueError(f"{what} {regex.pattern!r} matches no parameter; "
                         f"parameters are e.g. {sample}.")


def _scale_by_path(rules: list[tuple[re.Pattern, float]]) -> optax.GradientTransformation:
    """Multiplies each update by the mult of the first rule matching its path."""

    def mult_of(path: str) -> float:
        return next((m for regex, m in rules if regex.search(path)), 1.0)

    def init(params):
        paths = _paths(params)
        for regex, _ in rules:
            _require_matches(regex, paths, "lr_mults rule")
        return optax.EmptyState()

    def update(updates, state, params=None):
        del params
        scaled = jax.tree_util.tree_map_with_path(
            lambda p, u: u if (m := mult_of(path_str(p))) == 1.0 else u * jnp.asarray(m, u.dtype),
            updates)
        return scaled, state

    return optax.GradientTransformation(init, update)


def wrap_for_transfer(tx: optax.GradientTransformation, frozen: str | None = None,
                      lr_mults: Iterable[tuple[str, float]] | Mapping[str, float] | None = None
                      ) -> optax.GradientTransformation:
    """`tx` on the parameters `frozen` does not match, zero updates on the others,
    then updates scaled by `lr_mults`.

    Frozen parameters go to their own partition (optax.multi_transform with
    set_to_zero), so `tx` neither sees them (no weight decay, no share of
    the clipping norm) nor keeps state for them. The parameter paths are
    read when the optimizer is initialised, so no parameters are needed here.
    """
    if hasattr(lr_mults, "items"):  # a dict (or ConfigDict) {regex: mult}, in order
        lr_mults = lr_mults.items()
    rules = []
    for rule in lr_mults or ():
        pattern, mult = rule
        if not isinstance(mult, (int, float)) or isinstance(mult, bool) or mult < 0:
            raise ValueError(f"lr_mults rule {pattern!r}: the multiplier must be a number "
                             f">= 0, not {mult!r}.")
        rules.append((_compile(pattern, "lr_mults rule"), float(mult)))
    if frozen:
        frozen_re = _compile(frozen, "frozen")

        def labels(tree):
            _require_matches(frozen_re, _paths(tree), "frozen")
            return jax.tree_util.tree_map_with_path(
                lambda p, _: "frozen" if frozen_re.search(path_str(p)) else "trained", tree)

        tx = optax.multi_transform({"trained": tx, "frozen": optax.set_to_zero()}, labels)
    if rules:
        tx = optax.chain(tx, _scale_by_path(rules))
    return tx
