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


MAX_CPU_DEVICES = 8  # past this, per-device batches get too small to pay for the split on a CPU


def usable_cores() -> int:
    """Physical cores this process may use: its affinity mask (taskset), cgroup CPU quota and the core count."""
    import math
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        import psutil

        cores = min(cores, psutil.cpu_count(logical=False) or cores)
    except ImportError:
        pass
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()
        if quota != "max":
            cores = min(cores, max(1, math.floor(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def cpu_device_count(setting: Any, batch_sizes: tuple[int, ...]) -> int:
    """How many XLA CPU devices `trainer.cpu_devices` asks for: auto = the usable cores (capped), reduced to
    the largest count that divides every batch size (the global batch is split evenly over devices)."""
    if str(setting) == "auto":
        count = min(usable_cores(), MAX_CPU_DEVICES)
        while count > 1 and any(b % count for b in batch_sizes if b > 0):
            count -= 1
        return count
    try:
        count = int(setting)
    except (TypeError, ValueError):
        count = 0
    if count < 1:
        raise ConfigError(f"trainer.cpu_devices must be auto or a positive number, got {setting!r}")
    return count


def use_cpu_devices(setting: Any, batch_sizes: tuple[int, ...]) -> int | None:
    """Give XLA one CPU device per core before JAX starts its CPU backend (data parallel over them beats XLA's
    own intra-op threading on these models). Does nothing when the user set the count in XLA_FLAGS, a backend
    already started, or an accelerator plugin is installed. Returns the count set, or None."""
    import importlib.util
    import os

    from jax._src import xla_bridge

    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" in flags or xla_bridge._backends:
        return None
    if any(importlib.util.find_spec(p) for p in ("jax_cuda12_plugin", "jax_cuda13_plugin", "libtpu", "jax_rocm60_plugin")):
        return None
    count = cpu_device_count(setting, batch_sizes)
    os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={count}".strip()
    return count
