"""Declared shardings: regex rules from parameter paths to partition specs.

Rules are (regex, spec) pairs, first match wins, matched with re.search
against the '/'-joined path of each leaf ('params/head/kernel',
'opt_state/0/mu/head/kernel', ...), so one rule covers a parameter and its
optimizer slots. Anything unmatched is replicated. Specs are tuples of mesh
axis names or None, as written in configs: ('model',) or (None, 'model'),
or the string "fsdp": split the leaf's largest dimension that the `data`
axis divides over `data`, if the leaf has at least FSDP_MIN_SIZE elements
(fully sharded data parallel: each device keeps 1/data of the backbone and
its optimizer state; XLA gathers weights where the step needs them).

Presets by name (config field `sharding`): "replicated", "head" (the class
dimension over `model`), "fsdp" (the head over `model`, the rest FSDP).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import jax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

Rules = Sequence[tuple[str, Sequence[str | None] | None]]

# The class dimension of the head (last axis of kernel and bias) over `model`.
HEAD_SHARDED_RULES: Rules = ((r"head/kernel$", (None, "model")),
                             (r"head/bias$", ("model",)))
FSDP_MIN_SIZE = 2 ** 14
PRESETS: dict[str, Rules] = {
    "replicated": (),
    "head": HEAD_SHARDED_RULES,
    "fsdp": (*HEAD_SHARDED_RULES, (r".*", "fsdp")),
}


def rules_for(preset: str, extra: Rules = ()) -> Rules:
    """The config's rules: its own `extra` ones first, then the named preset's."""
    if preset not in PRESETS:
        raise ValueError(f"unknown sharding preset {preset!r}; known: {sorted(PRESETS)}.")
    return (*[tuple(r) for r in extra], *PRESETS[preset])


def _fsdp_spec(shape: tuple[int, ...], mesh: Mesh | None) -> P:
    data = mesh.shape.get("data", 1) if mesh is not None else 1
    size = 1
    for d in shape:
        size *= d
    if data == 1 or size < FSDP_MIN_SIZE:
        return P()
    dims = sorted((d for d in range(len(shape)) if shape[d] % data == 0),
                  key=lambda d: shape[d])
    if not dims:
        return P()
    spec = [None] * len(shape)
    spec[dims[-1]] = "data"
    return P(*spec)


def path_str(path: tuple) -> str:
    parts = []
    for k in path:
        for attr in ("key", "name", "idx"):
            if hasattr(k, attr):
                parts.append(str(getattr(k, attr)))
                break
        else:
            parts.append(str(k))
    return "/".join(parts)


def partition_specs(tree: Any, rules: Rules, mesh: Mesh | None = None) -> Any:
    """A tree of PartitionSpecs, one per leaf of `tree` (arrays or shapes)."""
    compiled = [(re.compile(pattern), spec) for pattern, spec in rules]

    def spec_for(path, leaf) -> P:
        name = path_str(path)
        shape = tuple(getattr(leaf, "shape", ()))
        ndim = len(shape)
        for pattern, spec in compiled:
            if pattern.search(name):
                if spec == "fsdp":
                    return _fsdp_spec(shape, mesh)
                spec = tuple(spec or ())
                if len(spec) > ndim:
                    # Scalars that share a name (e.g. optimizer counts) stay replicated.
                    return P()
                return P(*spec)
        return P()
    return jax.tree_util.tree_map_with_path(spec_for, tree)


def named_shardings(tree: Any, mesh: Mesh, rules: Rules) -> Any:
    return jax.tree.map(lambda spec: NamedSharding(mesh, spec),
                        partition_specs(tree, rules, mesh),
                        is_leaf=lambda x: isinstance(x, P))


def check_divisible(tree: Any, mesh: Mesh, rules: Rules) -> None:
    """Raises naming the parameter whose sharded dimension the mesh does not divide."""
    specs = partition_specs(tree, rules, mesh)
    for (path, leaf), spec in zip(jax.tree_util.tree_leaves_with_path(tree),
                                  jax.tree.leaves(specs, is_leaf=lambda x: isinstance(x, P))):
        for dim, axis in zip(leaf.shape, spec):
            if axis is None:
                continue
            axes = axis if isinstance(axis, tuple) else (axis,)
            size = 1
            for a in axes:
                size *= mesh.shape[a]
            if dim % size:
                raise ValueError(
                    f"{path_str(path)} has dimension {dim}, not divisible by mesh "
                    f"axis {axis} of size {size}; pick a mesh size that divides it "
                    "or pad the dimension (e.g. num_classes).")
