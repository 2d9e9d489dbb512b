"""Durations in steps, epochs or examples, resolved to whole training steps.

Every duration-like config field `<name>` may be given in any of three units:
`<name>_steps`, `<name>_epochs` or `<name>_examples` (`total_*`, `log_*`,
`ckpt_*`, an evaluator's `every_*`, a schedule's `warmup_*`, `decay_every_*`,
`boundaries_*`, ...). Epochs and examples round up to whole steps, so a
duration is never shorter than asked for.

    durations = Durations(batch_size=config.batch_size, examples_per_epoch=n_train)
    total = durations.steps(config, "total")
    log_every = durations.steps(config, "log", default=50)
    boundaries = durations.steps_list(config.schedule, "boundaries")

This module imports neither jax nor optax: the command line uses it before
anything heavy is loaded.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import re
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from typing import Any

UNITS = ("steps", "epochs", "examples")
_UNIT_FIELD = re.compile(r"^(?P<name>\w+)_(?P<unit>steps|epochs|examples)$")


def given(cfg: Mapping[str, Any], name: str) -> tuple[str, Any] | None:
    """The (unit, value) `cfg` sets for `name`, None if no unit is set.

    None counts as unset. Steps are the configs' default, so epochs or
    examples beside them win; epochs and examples together are an error.
    """
    units = {unit: cfg.get(f"{name}_{unit}") for unit in UNITS}
    units = {u: v for u, v in units.items() if v is not None}
    if len(units) > 1 and "steps" in units:
        del units["steps"]
    if len(units) > 1:
        raise ValueError(f"{name}: give one of {name}_steps/_epochs/_examples, not "
                         f"{sorted(f'{name}_{u}' for u in units)}.")
    return next(iter(units.items()), None)


def _exact(value: Any) -> Fraction:
    # A float's decimal form is what the user typed: 0.3 epochs of 10 examples
    # at batch 3 is exactly one step, though 0.3 * 10 / 3 > 1 in binary floats.
    if isinstance(value, Fraction):
        return value
    if isinstance(value, numbers.Integral):
        return Fraction(int(value))
    return Fraction(repr(float(value)))


@dataclasses.dataclass(frozen=True)
class Durations:
    """Converts `<name>_{steps,epochs,examples}` fields into training steps.

    `examples_per_epoch` is the training split's size (per epoch, across all
    hosts); None where it is unknown, which makes `*_epochs` an error.
    """

    batch_size: int
    examples_per_epoch: int | None = None

    def __post_init__(self):
        if self.batch_size <= 0:
            raise ValueError(f"batch_size must be positive, not {self.batch_size}.")

    def to_steps(self, value: Any, unit: str, field: str) -> int:
        """One value in `unit`, in whole steps (rounded up); `field` names it in errors."""
        if unit not in UNITS:
            raise ValueError(f"{field}: unknown unit {unit!r}; known: {', '.join(UNITS)}.")
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(f"{field}={value!r} is not a number.")
        exact = _exact(value)
        if unit == "steps":
            if exact.denominator != 1:
                raise ValueError(f"{field}={value} is not a whole number of steps.")
            return int(exact)
        if unit == "epochs":
            if not self.examples_per_epoch:
                raise ValueError(f"{field} needs the training split's size, which is "
                                 f"unknown here; give it in steps or examples.")
            exact *= self.examples_per_epoch
        return math.ceil(exact / self.batch_size)

    def maybe_steps(self, cfg: Mapping[str, Any], name: str, *,
                    allow_zero: bool = False) -> int | None:
        """`<name>_*` of `cfg` in steps, or None when no unit of it is set."""
        found = given(cfg, name)
        if found is None:
            return None
        unit, value = found
        field = f"{name}_{unit}"
        steps = self.to_steps(value, unit, field)
        _check_positive(steps, field, value, allow_zero)
        return steps

    def steps(self, cfg: Mapping[str, Any], name: str, default: int | None = None, *,
              allow_zero: bool = False) -> int:
        """`<name>_*` of `cfg` in steps; `default` (already in steps) if unset.

        Unset without a default is an error, and so is a result below one
        step (below zero with `allow_zero`, e.g. for a warmup).
        """
        steps = self.maybe_steps(cfg, name, allow_zero=allow_zero)
        if steps is not None:
            return steps
        if default is None:
            raise ValueError(f"{name}: set {name}_steps, {name}_epochs or {name}_examples.")
        return default

    def steps_list(self, cfg: Mapping[str, Any], name: str,
                   default: Sequence[int] | None = None, *,
                   allow_zero: bool = False) -> tuple[int, ...]:
        """A sequence field `<name>_*` (e.g. `boundaries_epochs=(30, 60)`) in steps.

        Each element is rounded up on its own; every one must be positive
        (non-negative with `allow_zero`).
        """
        found = given(cfg, name)
        if found is None:
            if default is None:
                raise ValueError(f"{name}: set {name}_steps, {name}_epochs or "
                                 f"{name}_examples (a sequence).")
            return tuple(default)
        unit, values = found
        field = f"{name}_{unit}"
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            raise ValueError(f"{field}={values!r} should be a sequence, e.g. (10, 20).")
        out = []
        for i, value in enumerate(values):
            steps = self.to_steps(value, unit, f"{field}[{i}]")
            _check_positive(steps, f"{field}[{i}]", value, allow_zero)
            out.append(steps)
        return tuple(out)


def _check_positive(steps: int, field: str, value: Any, allow_zero: bool) -> None:
    if steps < 0 or (steps == 0 and not allow_zero):
        need = "zero or more steps" if allow_zero else "at least one step"
        raise ValueError(f"{field}={value} is {steps} steps; it must be {need}.")


def apply_override_precedence(config: Any, overridden: Iterable[str]) -> list[str]:
    """Lets a duration's unit given on the command line win over the file's.

    `overridden` holds the dotted names of the overridden fields, as the keys
    of ml_collections' `config_flags.get_override_values(FLAGS["config"])`.
    For each `<name>_<unit>` among them, the other units of `<name>` in the
    same (sub)config are set to None, so `--config.total_epochs=2` works on a
    file that sets `total_examples`. Two units of one name on the command
    line are an error. Returns the dotted names of the fields cleared.
    """
    by_name: dict[tuple[str, str], str] = {}
    for path in overridden:
        parent, _, leaf = path.rpartition(".")
        m = _UNIT_FIELD.match(leaf)
        if not m:
            continue
        key = (parent, m["name"])
        if key in by_name and by_name[key] != m["unit"]:
            prefix = f"{parent}." if parent else ""
            raise ValueError(
                f"--config.{prefix}{m['name']}_{by_name[key]} and "
                f"--config.{prefix}{m['name']}_{m['unit']} both given; give one unit.")
        by_name[key] = m["unit"]

    cleared = []
    for (parent, name), unit in by_name.items():
        node = config
        for part in filter(None, parent.split(".")):
            node = node[part]
        for other in UNITS:
            field = f"{name}_{other}"
            if other != unit and field in node and node[field] is not None:
                # A locked ConfigDict accepts None for a field of any type.
                node[field] = None
                cleared.append(f"{parent}.{field}" if parent else field)
    return cleared
