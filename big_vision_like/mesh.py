"""The device mesh: a `data` axis for the batch, a `model` axis for the head."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA, MODEL = "data", "model"


def make_mesh(data: int = -1, model: int = 1,
              devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A (data x model) mesh over `devices` (all devices by default).

    One of the sizes may be -1: it takes whatever the other leaves.
    """
    devices = list(jax.devices() if devices is None else devices)
    n = len(devices)
    if data == -1 and model == -1:
        raise ValueError("mesh: at most one of data and model may be -1.")
    if data == -1:
        data = n // model if model > 0 and n % model == 0 else 0
    if model == -1:
        model = n // data if data > 0 and n % data == 0 else 0
    if data <= 0 or model <= 0 or data * model != n:
        raise ValueError(
            f"mesh: data={data} x model={model} does not match the {n} devices; "
            f"choose sizes whose product is {n} (e.g. --config.mesh.data={n} "
            "--config.mesh.model=1).")
    # Auto axes: classic jit with named shardings, the compiler propagates
    # shardings between the ones we declare. make_mesh orders the devices
    # for the physical topology (rings on TPU, NVLink islands on GPU).
    return jax.make_mesh((data, model), (DATA, MODEL),
                         axis_types=(AxisType.Auto, AxisType.Auto), devices=devices)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) dimension split over `data`, replicated over `model`."""
    return NamedSharding(mesh, P(DATA))


def tracing_on(mesh: Mesh):
    """Context for tracing a step that runs on `mesh`: lets model code see the
    mesh (`per_data_shard`) without being handed it."""
    return jax.sharding.use_abstract_mesh(mesh.abstract_mesh)


def per_data_shard(fn: Callable, in_axes: Sequence[int | None]) -> Callable:
    """`fn` over a batch (leading axis of the arguments whose `in_axes` is 0;
    None: the same for every example), run on each device's share of the batch
    when traced under `tracing_on` a mesh whose `data` axis has several devices.

    For per-example work with data-dependent loops (NMS): vmapped over a
    sharded batch, a `while_loop` runs until every example is done, which
    takes an all-reduce over the devices at every pass. Per shard, each
    device loops over its own examples only. Outside such a mesh, or when the
    batch does not split evenly, `fn` runs as it is.
    """
    def run(*args):
        mesh = jax.sharding.get_abstract_mesh()
        batched = [a for a, axis in zip(args, in_axes) if axis == 0]
        if (not batched or mesh.empty or DATA not in mesh.axis_names or mesh.shape[DATA] == 1
                or batched[0].shape[0] % mesh.shape[DATA]):
            return fn(*args)
        specs = tuple(P(DATA) if axis == 0 else P() for axis in in_axes)
        # check_vma off: with it, a loop started from a constant carry (NMS's
        # `jnp.bool_(True)`) fails to type-check once the carry depends on the
        # device's data; `fn` would need `jax.lax.pcast` in every such loop.
        return jax.shard_map(fn, mesh=mesh, in_specs=specs, out_specs=P(DATA),
                             axis_names={DATA}, check_vma=False)(*args)
    return run
