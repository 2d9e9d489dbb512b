"""Optimizers, learning-rate schedules and durations, from config fields.

Durations (`total`, a schedule's `decay_every`, `warmup`) may be given in
steps, epochs or examples: `total_steps`, `total_epochs` or
`total_examples`; the paper states its schedules in steps of batch 32 on
asynchronous workers, which configs translate into examples seen.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import jax
import optax

from big_vision_like.sharding import path_str


def resolve_steps(cfg: Mapping[str, Any], name: str, batch_size: int,
                  examples_per_epoch: int | None = None, default: int | None = None) -> int:
    """`<name>_steps`, `<name>_epochs` or `<name>_examples` of `cfg`, in steps.

    Epochs or examples override steps (configs carry a default in steps);
    epochs and examples together are an error. None counts as unset;
    examples and epochs round up to whole steps.
    """
    given = {unit: cfg.get(f"{name}_{unit}") for unit in ("steps", "epochs", "examples")}
    given = {u: v for u, v in given.items() if v is not None}
    if len(given) > 1 and "steps" in given:
        del given["steps"]
    if len(given) > 1:
        raise ValueError(f"{name}: give one of {name}_steps/_epochs/_examples, not "
                         f"{sorted(f'{name}_{u}' for u in given)}.")
    if not given:
        if default is None:
            raise ValueError(f"{name}: set {name}_steps, {name}_epochs or {name}_examples.")
        return default
    (unit, value), = given.items()
    if unit == "steps":
        return int(value)
    if unit == "epochs":
        if not examples_per_epoch:
            raise ValueError(f"{name}_epochs needs the training split's size, which is "
                             f"unknown here; give {name}_steps or {name}_examples.")
        value = value * examples_per_epoch
    return math.ceil(value / batch_size)


def build_schedule(cfg: Mapping[str, Any], total_steps: int, batch_size: int,
                   examples_per_epoch: int | None = None) -> optax.Schedule:
    """Schedules: constant, staircase (x decay_factor every decay_every),
    piecewise (x decay_factor at each of decay_at_*), cosine; all with optional
    linear warmup (warmup_steps/_epochs/_examples)."""
    name = cfg.get("name", "constant")
    base = float(cfg["base_lr"])
    warmup = resolve_steps(cfg, "warmup", batch_size, examples_per_epoch, default=0)
    if name == "constant":
        main = optax.constant_schedule(base)
    elif name == "staircase":
        every = resolve_steps(cfg, "decay_every", batch_size, examples_per_epoch)
        main = optax.exponential_decay(base, every, cfg.get("decay_factor", 0.1),
                                       staircase=True)
    elif name == "cosine":
        main = optax.cosine_decay_schedule(base, max(1, total_steps - warmup),
                                           alpha=cfg.get("end_factor", 0.0))
    else:
        raise ValueError(f"unknown schedule {name!r}; known: constant, staircase, cosine.")
    if not warmup:
        return main
    return optax.join_schedules([optax.linear_schedule(0.0, base, warmup), main], [warmup])


def weight_decay_mask(params: Any, pattern: str = r"kernel$") -> Any:
    """True for parameters that take weight decay (kernels; not BN or biases)."""
    regex = re.compile(pattern)
    return jax.tree_util.tree_map_with_path(lambda p, _: bool(regex.search(path_str(p))),
                                            params)


def build_optimizer(cfg: Mapping[str, Any], schedule: optax.Schedule
                    ) -> optax.GradientTransformation:
    """rmsprop (the paper's JFT recipe), momentum (its ImageNet recipe), adamw.

    `weight_decay` is L2 regularisation as in the paper's TensorFlow models
    (its gradient, wd * w, is added before the optimizer), on kernels only.
    """
    name = cfg.get("name", "momentum")
    if name == "rmsprop":
        # TF1's RMSProp: mean square starts at 1, eps inside the sqrt.
        opt = optax.rmsprop(schedule, decay=cfg.get("decay", 0.9), eps=cfg.get("eps", 1.0),
                            momentum=cfg.get("momentum", 0.9), initial_scale=1.0,
                            eps_in_sqrt=True)
    elif name == "momentum":
        opt = optax.sgd(schedule, momentum=cfg.get("momentum", 0.9),
                        nesterov=cfg.get("nesterov", False))
    elif name == "adamw":
        return optax.adamw(schedule, b1=cfg.get("b1", 0.9), b2=cfg.get("b2", 0.999),
                           weight_decay=cfg.get("weight_decay", 0.0),
                           mask=weight_decay_mask)
    else:
        raise ValueError(f"unknown optimizer {name!r}; known: rmsprop, momentum, adamw.")
    parts = []
    if cfg.get("grad_clip_norm"):
        parts.append(optax.clip_by_global_norm(cfg["grad_clip_norm"]))
    if cfg.get("weight_decay"):
        parts.append(optax.add_decayed_weights(cfg["weight_decay"], mask=weight_decay_mask))
    return optax.chain(*parts, opt)
