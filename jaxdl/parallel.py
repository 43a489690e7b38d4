"""The device mesh: data parallelism is jit over `jax.make_mesh` with the batch on P('data')."""

from __future__ import annotations

import jax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from jaxdl.errors import ConfigError


def data_mesh() -> Mesh:
    """A 1-D mesh over every device of every process; shardings propagate automatically from the batch."""
    return jax.make_mesh((jax.device_count(),), ("data",), axis_types=(AxisType.Auto,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P("data"))


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
    devices = mesh.devices.size
    if batch_size % devices:
        raise ConfigError(
            f"trainer.batch_size={batch_size} must be divisible by the {devices} devices of the mesh; "
            f"use a multiple of {devices}"
        )
