"""Exact top-k cosine search of evaluation embeddings against a large training set.

The training embeddings are cut into chunks of `devices x blocks x block_size`
rows; each device scans its blocks of a chunk with a running top-k (so only
an [eval, block_size] similarity block exists at a time), the devices' top-k
are merged, and the result is merged into the running top-k of the chunks
before. Neither the full [eval, train] matrix nor all training embeddings on
the devices at once are needed, so the search scales to millions of training
images. Ties keep the lower training index (lax.top_k is stable and every
merge puts lower indices first), as a stable sort of the full matrix would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

_AXIS = "train"
_EMPTY = -1


def l2_normalise(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to unit length (all-zero rows stay zero), float32."""
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), eps)


def train_mesh(devices: Iterable[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh over `devices` (all by default) that the training chunk is split over."""
    return Mesh(np.asarray(list(jax.devices() if devices is None else devices)), (_AXIS,))


def _merge(values: jax.Array, index: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    """The k largest of each row of (values, index), lower positions first on ties."""
    top, where = jax.lax.top_k(values, k)
    return top, jnp.take_along_axis(index, where, axis=1)


def _device_scan(queries: jax.Array, blocks: jax.Array, first: jax.Array,
                 num_valid: jax.Array, *, k: int) -> tuple[jax.Array, jax.Array]:
    """This device's top-k over its blocks [1, nb, bs, d]; `first` is the global index of
    its first row; rows at or past `num_valid` (chunk padding) never rank."""
    blocks = blocks[0]
    block_size = blocks.shape[1]
    e = queries.shape[0]
    init = (jnp.full((e, k), -jnp.inf, jnp.float32), jnp.full((e, k), _EMPTY, jnp.int32))

    def step(carry, inputs):
        block, b = inputs
        rows = first[0] + b * block_size + jnp.arange(block_size, dtype=jnp.int32)
        sims = jnp.dot(queries, block.T, precision=jax.lax.Precision.HIGHEST)
        sims = jnp.where(rows[None, :] < num_valid, sims, -jnp.inf)
        values = jnp.concatenate([carry[0], sims], axis=1)
        index = jnp.concatenate([carry[1], jnp.broadcast_to(rows, (e, block_size))], axis=1)
        return _merge(values, index, k), None

    (values, index), _ = jax.lax.scan(
        step, init, (blocks, jnp.arange(blocks.shape[0], dtype=jnp.int32)))
    return values[None], index[None]


@partial(jax.jit, static_argnames=("k", "mesh"))
def _chunk_topk(queries, blocks, offset, num_valid, best_values, best_index, *, k, mesh):
    n = mesh.shape[_AXIS]
    rows_per_device = blocks.shape[1] * blocks.shape[2]
    first = offset + jnp.arange(n, dtype=jnp.int32) * rows_per_device
    scan = jax.shard_map(partial(_device_scan, k=k), mesh=mesh,
                         in_specs=(P(), P(_AXIS), P(_AXIS), P()),
                         out_specs=(P(_AXIS), P(_AXIS)),
                         # The scan's initial top-k is the same on every device.
                         check_vma=False)
    values, index = scan(queries, blocks, first, num_valid)  # [devices, eval, k]
    # Device order is training order: the chunk's earlier top-k comes first.
    values = jnp.concatenate([best_values, *values], axis=1)
    index = jnp.concatenate([best_index, *index], axis=1)
    return _merge(values, index, k)


def blocked_topk(queries: np.ndarray, train: np.ndarray | Callable[[int, int], np.ndarray],
                 k: int = 5, *, num_train: int | None = None, block_size: int = 1024,
                 blocks_per_device: int = 4, query_block: int = 4096,
                 mesh: Mesh | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(similarities [E, k] float32, training indices [E, k] int64) of the k training
    rows most similar to each query row, by dot product (cosine for unit rows).

    `train`: an [N, d] array, or `fn(start, stop) -> rows` reading rows from disk,
    with `num_train` given; each chunk of `devices x blocks_per_device x
    block_size` rows is read once per `query_block` queries. Fewer than k training
    rows: the missing places get similarity -inf and index -1.
    """
    queries = np.asarray(queries, np.float32)
    if queries.ndim != 2:
        raise ValueError(f"queries must be [examples, dims], got shape {queries.shape}.")
    if callable(train):
        if num_train is None:
            raise ValueError("blocked_topk: a function reading training rows needs "
                             "num_train=<number of rows>.")
        read = train
    else:
        train = np.asarray(train, np.float32)
        if train.ndim != 2 or train.shape[1] != queries.shape[1]:
            raise ValueError(f"train {train.shape} must be [examples, {queries.shape[1]}] "
                             "to match the queries' dimension.")
        num_train = len(train) if num_train is None else num_train
        read = lambda start, stop: train[start:stop]
    if k < 1 or block_size < 1 or blocks_per_device < 1:
        raise ValueError(f"k={k}, block_size={block_size}, blocks_per_device="
                         f"{blocks_per_device}: each must be at least 1.")
    mesh = mesh or train_mesh()
    n = mesh.shape[_AXIS]
    chunk = n * blocks_per_device * block_size
    d = queries.shape[1]
    replicated = NamedSharding(mesh, P())
    sharded = NamedSharding(mesh, P(_AXIS))
    out_values, out_index = [], []
    for q0 in range(0, len(queries), query_block):
        q = jax.device_put(queries[q0:q0 + query_block], replicated)
        best_values = jax.device_put(np.full((len(q), k), -np.inf, np.float32), replicated)
        best_index = jax.device_put(np.full((len(q), k), _EMPTY, np.int32), replicated)
        for start in range(0, num_train, chunk):
            rows = np.asarray(read(start, min(start + chunk, num_train)), np.float32)
            if rows.shape[1:] != (d,):
                raise ValueError(f"training rows {start}... have shape {rows.shape}; "
                                 f"expected [rows, {d}].")
            padded = np.zeros((chunk, d), np.float32)
            padded[:len(rows)] = rows
            blocks = jax.device_put(padded.reshape(n, blocks_per_device, block_size, d),
                                    sharded)
            best_values, best_index = _chunk_topk(
                q, blocks, jnp.int32(start), jnp.int32(num_train), best_values, best_index,
                k=k, mesh=mesh)
        out_values.append(np.asarray(best_values))
        out_index.append(np.asarray(best_index).astype(np.int64))
    if not out_values:
        return np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)
    return np.concatenate(out_values), np.concatenate(out_index)


def pairs_above(similarities: np.ndarray, index: np.ndarray, threshold: float
                ) -> list[tuple[int, int, float]]:
    """(eval row, train row, similarity) of every top-k entry at or above `threshold`,
    most similar first."""
    rows, cols = np.nonzero(similarities >= threshold)
    found = [(int(r), int(index[r, c]), float(similarities[r, c]))
             for r, c in zip(rows, cols) if index[r, c] >= 0]
    return sorted(found, key=lambda p: -p[2])
