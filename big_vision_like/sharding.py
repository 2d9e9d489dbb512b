"""Declared shardings: regex rules from parameter paths to partition specs.

Rules are (regex, spec) pairs, first match wins, matched with re.search
against the '/'-joined path of each leaf ('params/head/kernel',
'opt_state/0/mu/head/kernel', ...), so one rule covers a parameter and its
optimizer slots. Anything unmatched is replicated. Specs are tuples of mesh
axis names or None, as written in configs: ('model',) or (None, 'model').
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


def partition_specs(tree: Any, rules: Rules) -> Any:
    """A tree of PartitionSpecs, one per leaf of `tree` (arrays or shapes)."""
    compiled = [(re.compile(pattern), spec) for pattern, spec in rules]

    def spec_for(path, leaf) -> P:
        name = path_str(path)
        ndim = len(getattr(leaf, "shape", ()))
        for pattern, spec in compiled:
            if pattern.search(name):
                spec = tuple(spec or ())
                if len(spec) > ndim:
                    # Scalars that share a name (e.g. optimizer counts) stay replicated.
                    return P()
                return P(*spec)
        return P()
    return jax.tree_util.tree_map_with_path(spec_for, tree)


def named_shardings(tree: Any, mesh: Mesh, rules: Rules) -> Any:
    return jax.tree.map(lambda spec: NamedSharding(mesh, spec),
                        partition_specs(tree, rules),
                        is_leaf=lambda x: isinstance(x, P))


def check_divisible(tree: Any, mesh: Mesh, rules: Rules) -> None:
    """Raises naming the parameter whose sharded dimension the mesh does not divide."""
    specs = partition_specs(tree, rules)
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
