"""Pluggable evaluators, built by name from `config.evals.<name>.type`.

An evaluator is constructed as `cls(config, context)` and has
`run(variables) -> Iterator[(metric, value)]`; the trainer writes each as
`<name>/<metric>`. `default_registry()` lists the standard ones; nothing
registers itself at import.
"""

from __future__ import annotations

from big_vision_like.registry import Registry


def default_registry() -> Registry:
    from evaluators.loss import LossEvaluator

    reg: Registry = Registry("evaluator")
    reg.register("loss", LossEvaluator)
    return reg
