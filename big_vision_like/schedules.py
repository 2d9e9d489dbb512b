"""Learning-rate schedules by name, from a config's `schedule` field.

    schedule = build_schedule(config.schedule, total_steps, durations)

Every schedule reads `base_lr` and an optional linear warmup from 0 to
`base_lr` over `warmup_{steps,epochs,examples}` (durations in any unit, see
`durations.py`) or over `warmup_fraction` of the run's steps (rounded up).
The schedules (`default_schedule_registry()`):

- constant: base_lr.
- staircase: base_lr * decay_factor ** floor(t / decay_every), t counted
  from the end of the warmup (the paper's x0.9 every 3M examples).
- piecewise: base_lr * factors[i] from boundaries[i] on, base_lr before the
  first boundary. Factors multiply base_lr itself, not each other (like
  big_vision's "stair" `mults`): boundaries_epochs=(30, 60, 80),
  factors=(0.1, 0.01, 0.001). Boundaries count from the start of training,
  warmup included, and must lie after the warmup.
- cosine: from base_lr to base_lr * end_factor over the steps after the warmup.
- poly: DeepLab's (base_lr - end_lr) * (1 - t / T) ** power + end_lr, with
  t counted from the end of the warmup and T = total_steps - warmup;
  power 0.9 and end_lr 0 unless set.

A new schedule is a function `(cfg, ScheduleContext) -> optax.Schedule`
registered under a name in a registry passed to `build_schedule`.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Mapping
from typing import Any

import jax.numpy as jnp
import optax

from big_vision_like import durations as durations_lib
from big_vision_like.config import schema
from big_vision_like.durations import Durations
from big_vision_like.registry import Registry


@dataclasses.dataclass(frozen=True)
class ScheduleContext:
    """What a schedule needs besides its own config fields."""

    base_lr: float
    total_steps: int
    warmup_steps: int
    durations: Durations


# Returns the learning rate at an absolute training step; build_schedule
# replaces the first `warmup_steps` of it with the warmup.
ScheduleFactory = Callable[[Mapping[str, Any], ScheduleContext], optax.Schedule]


def _after_warmup(fn: optax.Schedule, warmup: int) -> optax.Schedule:
    return fn if not warmup else (lambda step: fn(step - warmup))


def constant(cfg: Mapping[str, Any], ctx: ScheduleContext) -> optax.Schedule:
    return optax.constant_schedule(ctx.base_lr)


def staircase(cfg: Mapping[str, Any], ctx: ScheduleContext) -> optax.Schedule:
    every = ctx.durations.steps(cfg, "decay_every")
    return _after_warmup(optax.exponential_decay(
        ctx.base_lr, every, cfg["decay_factor"], staircase=True), ctx.warmup_steps)


def piecewise(cfg: Mapping[str, Any], ctx: ScheduleContext) -> optax.Schedule:
    boundaries = ctx.durations.steps_list(cfg, "boundaries")
    factors = tuple(float(f) for f in cfg["factors"] or ())
    if len(factors) != len(boundaries) or not boundaries:
        raise ValueError(f"piecewise schedule: {len(boundaries)} boundaries need as many "
                         f"factors (one per boundary), got factors={factors}.")
    if any(a >= b for a, b in itertools.pairwise(boundaries)):
        raise ValueError(f"piecewise schedule: boundaries {boundaries} (in steps) must "
                         "increase strictly.")
    if ctx.warmup_steps and boundaries[0] <= ctx.warmup_steps:
        raise ValueError(f"piecewise schedule: the first boundary ({boundaries[0]} steps) "
                         f"must come after the warmup ({ctx.warmup_steps} steps).")
    bounds = jnp.asarray(boundaries, jnp.int32)
    # Products in float64 on the host, so base_lr * f is rounded once.
    values = jnp.asarray([ctx.base_lr] + [ctx.base_lr * f for f in factors], jnp.float32)

    def schedule(step):
        return values[jnp.searchsorted(bounds, step, side="right")]
    return schedule


def cosine(cfg: Mapping[str, Any], ctx: ScheduleContext) -> optax.Schedule:
    return _after_warmup(optax.cosine_decay_schedule(
        ctx.base_lr, max(1, ctx.total_steps - ctx.warmup_steps),
        alpha=cfg["end_factor"]), ctx.warmup_steps)


def poly(cfg: Mapping[str, Any], ctx: ScheduleContext) -> optax.Schedule:
    return _after_warmup(optax.polynomial_schedule(
        ctx.base_lr, cfg["end_lr"], cfg["power"],
        max(1, ctx.total_steps - ctx.warmup_steps)), ctx.warmup_steps)


def default_schedule_registry() -> Registry[ScheduleFactory]:
    reg: Registry[ScheduleFactory] = Registry("schedule")
    reg.register("constant", constant)
    reg.register("staircase", staircase)
    reg.register("piecewise", piecewise)
    reg.register("cosine", cosine)
    reg.register("poly", poly)
    return reg


def warmup_steps(cfg: Mapping[str, Any], total_steps: int, durations: Durations) -> int:
    """The warmup of a completed schedule config, in steps."""
    fraction = cfg["warmup_fraction"]
    if fraction is None:
        return durations.steps(cfg, "warmup", allow_zero=True)
    unit = durations_lib.given(cfg, "warmup")
    if unit is not None and (unit[0] != "steps" or unit[1]):
        raise ValueError(f"schedule: give warmup_fraction or warmup_{unit[0]}, not both.")
    if not 0 <= fraction < 1:
        raise ValueError(f"schedule.warmup_fraction={fraction!r}: give a share of the run "
                         "in [0, 1).")
    # Rounded to 1e-9 first: 0.05 of 200 steps is 10, not 10.000000000000002 -> 11.
    return math.ceil(round(fraction * total_steps, 9))


def build_schedule(cfg: Mapping[str, Any], total_steps: int,
                   durations: Durations | int | None = None,
                   examples_per_epoch: int | None = None, *,
                   registry: Registry[ScheduleFactory] | None = None,
                   batch_size: int | None = None) -> optax.Schedule:
    """The schedule `cfg.name` of `registry` (default: the standard ones); its fields
    and their defaults are the schema's (config/schema.py SCHEDULES).

    `durations` converts the schedule's duration fields. The old signature
    `build_schedule(cfg, total_steps, batch_size, examples_per_epoch)` still
    works: an int there (or `batch_size=`) is the batch size.
    """
    if not isinstance(durations, Durations):
        size = durations if durations is not None else batch_size
        if size is None:
            raise TypeError("build_schedule needs durations (or a batch_size).")
        durations = Durations(int(size), examples_per_epoch)
    cfg = schema.schedule(cfg)
    registry = registry or default_schedule_registry()
    factory = registry.get(cfg["name"])
    base = float(cfg["base_lr"])
    warmup = warmup_steps(cfg, total_steps, durations)
    main = factory(cfg, ScheduleContext(base, total_steps, warmup, durations))
    if not warmup:
        return main
    ramp = optax.linear_schedule(0.0, base, warmup)

    def schedule(step):
        return jnp.where(step < warmup, ramp(step), main(step))
    return schedule
