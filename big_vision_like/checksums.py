"""Checksums of a checkpoint's arrays, taken at save and checked before use.

orbax checks nothing of what it reads back: a flipped bit in an array file
loads as another finite value. Each array gets two 32-bit sums of its
elements' bit patterns, one plain and one weighted by odd weights that
depend on the element's position (`_sums`). A flip of any one bit changes an
element by +-2^k and the weighted sum by an odd multiple of 2^k, never 0
modulo 2^32, so a single flipped bit is always caught (several are missed
with probability about 2^-32). The sums run on the devices, whatever the
sharding, and are saved in the checkpoint's JSON item, which orbax commits
atomically with the arrays; that item's own content is covered by a SHA-256.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from big_vision_like.sharding import path_str

KEY = "checksums"  # in a checkpoint's data item
_DATA = "<data>"  # the entry of the data item itself
COLUMN_MULTIPLIER = 2654435761  # Knuth's multiplicative hash constant
ROW_MULTIPLIER, ROW_OFFSET = 0x85EBCA6B, 0x9E3779B9


def _bits(x: jax.Array) -> jax.Array:
    """The elements' bit patterns as uint32 (8-byte elements as two)."""
    if x.dtype == jnp.bool_:
        return x.astype(jnp.uint32)
    size = jnp.dtype(x.dtype).itemsize
    unsigned = {1: jnp.uint8, 2: jnp.uint16, 4: jnp.uint32, 8: jnp.uint32}[size]
    return jax.lax.bitcast_convert_type(x, unsigned).astype(jnp.uint32)


def _odd_weights(n: int, multiplier: int, offset: int) -> jax.Array:
    return (jnp.arange(n, dtype=jnp.uint32) * np.uint32(multiplier)
            + np.uint32(offset)) | np.uint32(1)


def _position_weights(shape: tuple[int, ...]) -> jax.Array:
    """A row's weight (ROW_MULTIPLIER, ROW_OFFSET) by its row-major position, from
    per-axis iotas: no reshape of a sharded array, so no resharding."""
    position = jnp.zeros(shape, jnp.uint32)
    stride = 1
    for axis in reversed(range(len(shape))):
        position += (jax.lax.broadcasted_iota(jnp.uint32, shape, axis)
                     * np.uint32(stride % 2 ** 32))
        stride *= shape[axis]
    return position * np.uint32(ROW_MULTIPLIER) + np.uint32(ROW_OFFSET) | np.uint32(1)


@jax.jit
def _sums(x: jax.Array) -> jax.Array:
    """[plain, weighted] sums mod 2^32 of the bit patterns b[r, k] (k the last axis,
    r the row-major position of the others): weighted by a_r * c_k, both odd."""
    b = _bits(x)
    if b.ndim == 0:
        b = b[None]
    c = _odd_weights(b.shape[-1], COLUMN_MULTIPLIER, 0)
    rows = jnp.sum(b * c, axis=-1, dtype=jnp.uint32)
    weighted = jnp.sum(rows * _position_weights(rows.shape), dtype=jnp.uint32)
    return jnp.stack([jnp.sum(b, dtype=jnp.uint32), weighted])


def _is_array(x: Any) -> bool:
    return hasattr(x, "dtype") and hasattr(x, "shape")


def of_state(state: Any) -> dict[str, list[int]]:
    """path -> [plain, weighted] sums of every array of `state`."""
    leaves = [(path_str(p), x) for p, x in jax.tree_util.tree_leaves_with_path(state)
              if _is_array(x)]
    # One jitted call per array (compiled once per shape and sharding): one call
    # over the whole tree held every array's temporaries at once (22 GB for a
    # ResNet-101 state on the CPU).
    sums = jax.device_get([_sums(x) for _, x in leaves])
    return {name: [int(v) for v in np.asarray(s)] for (name, _), s in zip(leaves, sums)}


def _of_data(data: Mapping[str, Any]) -> str:
    text = json.dumps({k: v for k, v in data.items() if k != KEY}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def with_checksums(data: Mapping[str, Any], state: Any) -> dict[str, Any]:
    """The data item to save beside `state`, its checksums added."""
    out = dict(data)
    out[KEY] = {**of_state(state), _DATA: _of_data(out)}
    return out


def first_mismatch(state: Any, data: Mapping[str, Any]) -> str | None:
    """What differs from the checksums saved in `data`: None when all agree, or
    when the checkpoint has none (saved before checksums were kept)."""
    saved = data.get(KEY)
    if saved is None:
        return None
    if saved.get(_DATA) != _of_data(data):
        return "the checkpoint's data item (input position, loss record)"
    now = of_state(state)
    for name, sums in now.items():
        if name not in saved:
            return f"{name} (no checksum saved for it)"
        if sums != saved[name]:
            return name
    return None


def without_checksums(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != KEY}
