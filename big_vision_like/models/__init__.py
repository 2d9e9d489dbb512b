"""Models, looked up by name (`config.model.name`) in an explicit registry.

A model is a flax module class built from the config's `model` fields. It
may come with a `load(flat) -> flat` function (see `resnet.load`) that
renames variable paths of older or foreign checkpoints for `init_from`,
as big_vision's models do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax.numpy as jnp

from big_vision_like.registry import Registry

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


class ModelEntry(NamedTuple):
    module: type[nn.Module]
    load: Callable[[dict[str, Any]], dict[str, Any]] | None = None


def default_registry() -> Registry[ModelEntry]:
    from big_vision_like.models import deeplab, faster_rcnn, pose_resnet, resnet

    reg: Registry[ModelEntry] = Registry("model")
    reg.register("resnet", ModelEntry(resnet.ResNet, resnet.load))
    # Dense models keep the ResNet body at its paths: the same checkpoint surgery.
    reg.register("pose_resnet", ModelEntry(pose_resnet.PoseResNet, resnet.load))
    reg.register("deeplab", ModelEntry(deeplab.DeepLab, resnet.load))
    reg.register("faster_rcnn", ModelEntry(faster_rcnn.FasterRCNN, resnet.load))
    return reg


def build(cfg: Any, registry: Registry[ModelEntry] | None = None, **overrides: Any
          ) -> tuple[nn.Module, ModelEntry]:
    """The module the config's `model` fields describe; `overrides` win over them.

    `dtype` is given by name ('float32', 'bfloat16'); fields set to None are
    left at the module's default.
    """
    kwargs = {k: v for k, v in dict(cfg).items() if v is not None}
    entry = (registry or default_registry()).get(kwargs.pop("name", "resnet"))
    if "dtype" in kwargs:
        if kwargs["dtype"] not in DTYPES:
            raise ValueError(f"model.dtype {kwargs['dtype']!r} is not one of "
                             f"{sorted(DTYPES)}.")
        kwargs["dtype"] = DTYPES[kwargs["dtype"]]
    kwargs.update(overrides)
    try:
        return entry.module(**kwargs), entry
    except TypeError as e:
        raise TypeError(f"model {entry.module.__name__}: {e}; check the config's model "
                        "fields.") from e
