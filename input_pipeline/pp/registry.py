"""The registry that names preprocessing ops: the standard ones, plus those a
dataset brings (`DataSource.pp_ops`, e.g. synthetic_jft's shape families)."""

from __future__ import annotations

from collections.abc import Mapping

from big_vision_like.registry import Registry
from input_pipeline.pp import decode, detection, joint, ops, pose
from input_pipeline.pp.base import OpFactory


def default_registry(extra: Mapping[str, OpFactory] | None = None) -> Registry[OpFactory]:
    """A fresh registry of the standard ops and `extra` (a dataset's own ops)."""
    reg: Registry[OpFactory] = Registry("preprocessing op")
    reg.register("decode", OpFactory(ops.decode, decodes=True))
    for fn in decode.DECODE_OPS:
        reg.register(fn.__name__, OpFactory(fn, decodes=True))
    for fn in (*joint.JOINT_OPS, *ops.GENERAL_OPS, *detection.DETECTION_OPS,
               pose.pose_crop_train, pose.pose_crop_eval):
        reg.register(fn.__name__, OpFactory(fn))
    for name, factory in (extra or {}).items():
        reg.register(name, factory)
    return reg
