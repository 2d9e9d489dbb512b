"""Checksums of a checkpoint's arrays, taken at save and checked before use.

orbax checks nothing of what it reads back: a flipped bit in an array file
loads as another finite value. Each array gets two 32-bit sums of its
elements' bit patterns, one plain and one weighted by odd weights that
depend on the element's position in the whole array (`_shard_sums`). A flip
of any one bit changes an element by +-2^k and the weighted sum by an odd
multiple of 2^k, never 0 modulo 2^32, so a single flipped bit is always
caught (several are missed with probability about 2^-32). Each shard is
summed on its device and the shards' sums added (one allgather with several
processes), so the sums do not depend on the sharding: a checkpoint restored
onto another topology is checked alike. They are saved in the checkpoint's
JSON item, which orbax commits atomically with the arrays; that item's own
content is covered by a SHA-256.
"""

from __future__ import annotations

import functools
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


def _row_weights(shape: tuple[int, ...], offsets: jax.Array,
                 global_shape: tuple[int, ...]) -> jax.Array:
    """Each row's weight (ROW_MULTIPLIER, ROW_OFFSET) by its row-major position in
    the whole array (`offsets`: where this shard starts in `global_shape`)."""
    position = jnp.zeros(shape, jnp.uint32)
    stride = 1
    for axis in reversed(range(len(shape))):
        index = jax.lax.broadcasted_iota(jnp.uint32, shape, axis) + offsets[axis]
        position += index * np.uint32(stride % 2 ** 32)
        stride *= global_shape[axis]
    return position * np.uint32(ROW_MULTIPLIER) + np.uint32(ROW_OFFSET) | np.uint32(1)


@functools.partial(jax.jit, static_argnames="global_shape")
def _shard_sums(x: jax.Array, offsets: jax.Array, global_shape: tuple[int, ...]
                ) -> jax.Array:
    """[plain, weighted] sums mod 2^32 over one shard of the bit patterns b[r, k] of
    the whole array (k its last index, r the row-major index of the others),
    weighted by a_r * c_k, both odd; the whole array's sums are those of its
    shards added. A shard is summed on its own device: no collective, so
    processes never wait on each other (per-array collectives deadlocked two
    processes over gloo)."""
    b = _bits(x)
    if b.ndim > x.ndim:  # 8-byte elements as two words
        offsets = jnp.append(offsets, jnp.uint32(0))
        global_shape = (*global_shape, 2)
    if b.ndim == 0:
        b, offsets, global_shape = b[None], jnp.zeros(1, jnp.uint32), (1,)
    k = jnp.arange(b.shape[-1], dtype=jnp.uint32) + offsets[-1]
    c = k * np.uint32(COLUMN_MULTIPLIER) | np.uint32(1)
    rows = jnp.sum(b * c, axis=-1, dtype=jnp.uint32)
    weights = _row_weights(rows.shape, offsets[:-1], global_shape[:-1])
    return jnp.stack([jnp.sum(b, dtype=jnp.uint32),
                      jnp.sum(rows * weights, dtype=jnp.uint32)])


def _is_array(x: Any) -> bool:
    return hasattr(x, "dtype") and hasattr(x, "shape")


def of_state(state: Any) -> dict[str, list[int]]:
    """path -> [plain, weighted] sums of every array of `state`, whatever its
    sharding (each shard once: its replica 0, on whichever process holds it)."""
    leaves = [(path_str(p), jnp.asarray(x) if not isinstance(x, jax.Array) else x)
              for p, x in jax.tree_util.tree_leaves_with_path(state) if _is_array(x)]
    parts = []  # (leaf, sums of one shard), dispatched without waiting
    for i, (_, x) in enumerate(leaves):
        for shard in x.addressable_shards:
            if shard.replica_id == 0:
                offsets = np.array([sl.start or 0 for sl in shard.index], np.uint32)
                parts.append((i, _shard_sums(shard.data, offsets, tuple(x.shape))))
    totals = np.zeros((len(leaves), 2), np.uint64)
    for i, sums in zip([i for i, _ in parts], jax.device_get([p for _, p in parts])):
        totals[i] += np.asarray(sums, np.uint64)
    totals = (totals % 2 ** 32).astype(np.uint32)
    if jax.process_count() > 1:  # one collective, from the main thread
        from jax.experimental import multihost_utils

        gathered = np.asarray(multihost_utils.process_allgather(totals), np.uint64)
        totals = (gathered.reshape(-1, len(leaves), 2).sum(0) % 2 ** 32).astype(np.uint32)
    return {name: [int(v) for v in totals[i]] for i, (name, _) in enumerate(leaves)}


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
