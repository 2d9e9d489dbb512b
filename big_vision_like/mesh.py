"""The device mesh: a `data` axis for the batch, a `model` axis for the head."""

from __future__ import annotations

from collections.abc import Sequence

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
