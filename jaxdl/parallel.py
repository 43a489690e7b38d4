"""The device mesh: data parallelism is jit over `jax.make_mesh` with the batch on P('data')."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from jaxdl.errors import ConfigError
from jaxdl.trees import is_key, key_from_data


def data_mesh() -> Mesh:
    """A 1-D mesh over every device of every process; shardings propagate automatically from the batch."""
    return jax.make_mesh((jax.device_count(),), ("data",), axis_types=(AxisType.Auto,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def put_replicated(tree: Any, mesh: Mesh) -> Any:
    """Every leaf whole on every device of the mesh; with several processes each passes its identical copy."""
    sharding = replicated(mesh)
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)

    def put(x):
        if is_key(x):
            return key_from_data(put(jax.random.key_data(x)), x)
        return jax.make_array_from_process_local_data(sharding, np.asarray(x))

    return jax.tree.map(put, tree)


def batch_sharded(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P("data"))


def check_batch_size(batch_size: int, mesh: Mesh, key: str = "trainer.batch_size") -> None:
    devices = mesh.devices.size
    if batch_size % devices:
        raise ConfigError(
            f"{key}={batch_size} must be divisible by the {devices} devices of the mesh; use a multiple of {devices}"
        )
