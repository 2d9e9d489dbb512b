"""Checks a config against what can be known before any dataset is opened or any
program compiled: names the registries know, batch sizes the devices divide, a
mesh that fits, positive durations and learning rates, regexes that compile, pp
strings that parse.

    validate(config, num_devices=jax.device_count(), num_processes=jax.process_count())

Every problem is collected, not just the first; each is one line naming the
field and the fix. Imports jax, flax and optax (the registries) but never
TensorFlow or a dataset: on 2 cores it answers in about 2 s.
"""

from __future__ import annotations

import dataclasses
import numbers
import re
from collections.abc import Callable, Mapping
from typing import Any

from big_vision_like import durations
from big_vision_like.config import schema
from big_vision_like.registry import Registry

EVAL_NAME = re.compile(r"[A-Za-z0-9_]+")
_DURATIONS = ("total", "log", "ckpt", "keep_ckpt_every")


class ConfigError(ValueError):
    """The config cannot run; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclasses.dataclass(frozen=True)
class Registries:
    """The names a config may use, by registry."""

    tasks: Registry
    models: Registry
    losses: Registry
    evaluators: Registry
    optimizers: Registry
    schedules: Registry
    sharding_presets: tuple[str, ...]

    @classmethod
    def default(cls) -> Registries:
        import evaluators
        from big_vision_like import losses, models, optim, schedules, sharding, tasks

        return cls(tasks.default_registry(), models.default_registry(),
                   losses.default_registry(), evaluators.default_registry(),
                   optim.default_optimizer_registry(), schedules.default_schedule_registry(),
                   tuple(sharding.PRESETS))


def validate(config: Mapping[str, Any], num_devices: int, num_processes: int = 1,
             registries: Registries | None = None) -> None:
    """Raises ConfigError listing every problem found; returns None if there is none."""
    reg = registries or Registries.default()
    # Read over the schema's defaults, so a config built by hand is checked alike.
    config = schema.over_base(config)
    problems: list[str] = []
    check = _Checker(problems)
    _check_names(config, reg, check)
    data_axis = _check_mesh(config, num_devices, check)
    for field in ("batch_size", "eval_batch_size"):
        value = config.get(field)
        if value is None and field == "eval_batch_size":
            continue
        if check.positive_int(field, value) and data_axis:
            split = num_processes * data_axis
            check.that(value % split == 0, field,
                       f"{value} is not divisible by the {num_processes} process(es) x "
                       f"{data_axis} device(s) on the data axis; use a multiple of {split}")
    for name in _DURATIONS:
        _check_duration(config, name, name, check, allow_zero=name == "total")
    check.that(_is_int(config.keep_ckpts) and config.keep_ckpts >= 1, "keep_ckpts",
               f"{config.keep_ckpts!r}: keep at least 1 checkpoint")
    _check_schedule(config.schedule, check)
    _check_regexes(config, check)
    _check_pp(config, check)
    shape = config.input.image_shape
    if shape is not None:
        check.that(isinstance(shape, (tuple, list)) and len(shape) == 3
                   and all(_is_int(s) and s > 0 for s in shape), "input.image_shape",
                   f"{shape!r}: give (height, width, channels), three positive ints")
    for name, cfg in config.evals.items():
        _check_duration(cfg, "every", f"evals.{name}.every", check)
    if problems:
        raise ConfigError(problems)


class _Checker:
    def __init__(self, problems: list[str]):
        self.problems = problems

    def that(self, ok: bool, field: str, fix: str) -> bool:
        if not ok:
            self.problems.append(f"config.{field}: {fix}.")
        return ok

    def positive_int(self, field: str, value: Any) -> bool:
        return self.that(_is_int(value) and value > 0, field,
                         f"{value!r}: give a positive whole number")

    def known(self, field: str, name: Any, registry: Registry | tuple[str, ...]) -> bool:
        names = list(registry)
        return self.that(name in names, field,
                         f"unknown name {name!r}; use one of {', '.join(sorted(names))}")

    def fields(self, field: str, complete: Callable, cfg: Any) -> None:
        """The section's fields are those its name takes (schema.OPTIMIZERS, ...)."""
        try:
            complete(cfg)
        except ValueError as e:
            self.that(False, field, str(e).partition(": ")[2].rstrip("."))

    def regex(self, field: str, pattern: Any) -> None:
        if pattern is None or pattern == "":
            return
        try:
            re.compile(pattern)
        except (re.error, TypeError) as e:
            self.that(False, field, f"{pattern!r} is not a regular expression ({e}); "
                                    "fix the pattern (escape literal brackets and dots)")


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_names(config, reg: Registries, check: _Checker) -> None:
    if check.known("task", config.task, reg.tasks):
        check.fields(config.task, lambda c: schema.task_section(config.task, c),
                     config.get(config.task))
    check.known("model.name", config.model.name, reg.models)
    check.known("loss", config.loss, reg.losses)
    if check.known("optimizer.name", config.optimizer.name, reg.optimizers):
        check.fields("optimizer", schema.optimizer, config.optimizer)
    if check.known("schedule.name", config.schedule.name, reg.schedules):
        check.fields("schedule", schema.schedule, config.schedule)
    check.known("sharding", config.sharding, reg.sharding_presets)
    for name, cfg in config.evals.items():
        if check.that(bool(EVAL_NAME.fullmatch(name)), f"evals.{name}",
                      "name evaluators with letters, digits and '_' only"):
            if check.known(f"evals.{name}.type", cfg.get("type"), reg.evaluators):
                check.fields(f"evals.{name}", lambda c, n=name: schema.evaluator(n, c), cfg)


def _check_mesh(config, num_devices: int, check: _Checker) -> int | None:
    """The data axis's size, or None where the mesh does not fit."""
    data, model = config.mesh.data, config.mesh.model
    if not check.positive_int("mesh.model", model):
        return None
    if not check.that(_is_int(data) and (data == -1 or data > 0), "mesh.data",
                      f"{data!r}: give a positive number of devices, or -1 for the rest"):
        return None
    if data == -1:
        return num_devices // model if check.that(
            num_devices % model == 0, "mesh.model",
            f"{model} does not divide the {num_devices} devices; use a divisor of "
            f"{num_devices}") else None
    return data if check.that(
        data * model == num_devices, "mesh",
        f"data={data} x model={model} is {data * model} devices but there are "
        f"{num_devices}; set mesh.data=-1 to use the rest") else None


def _check_duration(cfg, name: str, field: str, check: _Checker,
                    allow_zero: bool = False) -> None:
    try:
        given = durations.given(cfg, name)
    except ValueError as e:
        check.that(False, field, str(e).rstrip("."))
        return
    if given is None:
        return
    unit, value = given
    least = "0 or more" if allow_zero else "more than 0"
    check.that(_is_number(value) and (value >= 0 if allow_zero else value > 0),
               f"{field}_{unit}", f"{value!r}: give a number of {unit}, {least}")


def _check_schedule(schedule, check: _Checker) -> None:
    lr = schedule.get("base_lr")
    if lr is not None:
        check.that(_is_number(lr) and lr > 0, "schedule.base_lr",
                   f"{lr!r}: give a learning rate above 0")
    fraction = schedule.get("warmup_fraction")
    if fraction is not None:
        check.that(_is_number(fraction) and 0 <= fraction < 1, "schedule.warmup_fraction",
                   f"{fraction!r}: give a share of the run in [0, 1)")
    given = None
    try:
        given = durations.given(schedule, "warmup")
    except ValueError as e:
        check.that(False, "schedule.warmup", str(e).rstrip("."))
    if given is not None:
        unit, value = given
        check.that(_is_number(value) and value >= 0, f"schedule.warmup_{unit}",
                   f"{value!r}: give 0 or more {unit}")


def _check_regexes(config, check: _Checker) -> None:
    check.regex("frozen", config.frozen)
    check.regex("init_from.skip", config.init_from.skip)
    for field in ("lr_mults", "sharding_rules"):
        for i, rule in enumerate(config[field] or ()):
            if check.that(isinstance(rule, (tuple, list)) and len(rule) == 2,
                          f"{field}[{i}]", f"{rule!r}: give (regex, value) pairs"):
                check.regex(f"{field}[{i}]", rule[0])


def _check_pp(config, check: _Checker) -> None:
    from input_pipeline.pp.spec import parse_pp_spec  # TensorFlow-free

    def parses(field: str, spec: Any, parse: Callable = parse_pp_spec) -> None:
        if spec is None:
            return
        try:
            parse(spec)
        except (ValueError, SyntaxError, TypeError) as e:
            check.that(False, field,
                       f"the preprocessing string does not parse: {str(e).rstrip('.')}")

    parses("input.pp", config.input.pp)
    for name, cfg in config.evals.items():
        parses(f"evals.{name}.pp", cfg.get("pp"))
