"""Turning a preprocessing string into tf.data map functions.

    pp = build_preprocess("decode|resize(340)|random_crop(299)|flip_lr", registry, ctx)

The string's ops are looked up in a registry (`pp.registry.default_registry`, plus
a dataset's own ops); the recipes of the paper are strings in `pp.recipes`.
"""

from __future__ import annotations

import dataclasses

from big_vision_like.registry import Registry
from input_pipeline.pp.base import Example, Op, OpFactory, PPContext
from input_pipeline.pp.recipes import inception_train, paper_eval, paper_train
from input_pipeline.pp.spec import parse_pp_spec

# The recipes live in TensorFlow-free `recipes` (for configs); re-exported here.
__all__ = ["Preprocess", "build_preprocess", "inception_train", "paper_eval",
           "paper_train"]


@dataclasses.dataclass(frozen=True)
class Preprocess:
    """A parsed preprocessing string, split at its last decoding op.

    `decode_stage` holds the ops up to and including the last decoding op: a
    corrupt record fails there, and the pipeline may skip it. Errors in
    `rest` (a label out of range, a bad crop size) always stop the run.
    """

    decode_stage: Op
    rest: Op
    has_decode: bool


def _chain(ops: list[Op]) -> Op:
    def fn(data: Example) -> Example:
        data = dict(data)
        for op in ops:
            data = op(data)
        return data
    return fn


def build_preprocess(spec: str, registry: Registry[OpFactory],
                     ctx: PPContext) -> Preprocess:
    factories = []
    for name, args, kwargs in parse_pp_spec(spec):
        factory = registry.get(name)
        try:
            factories.append((factory, factory.build(ctx, *args, **kwargs)))
        except (TypeError, ValueError) as e:
            given = ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())])
            raise ValueError(f"preprocessing op {name}({given}): {e}") from None
    last_decode = max((i for i, (f, _) in enumerate(factories) if f.decodes),
                      default=-1)
    ops = [op for _, op in factories]
    return Preprocess(decode_stage=_chain(ops[:last_decode + 1]),
                      rest=_chain(ops[last_decode + 1:]),
                      has_decode=last_decode >= 0)
