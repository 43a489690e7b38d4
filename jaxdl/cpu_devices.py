"""One XLA device per CPU core, and XLA threads enough for them, set before JAX starts its CPU backend.

Kept free of JAX imports: the apps call it first thing, and importing JAX (a second on a laptop)
would delay their first line.
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
import sys
from typing import Any

from jaxdl.errors import ConfigError

MAX_CPU_DEVICES = 8  # past this, per-device batches get too small to pay for the split on a CPU
# XLA threads per CPU device (its intra-op and client pools, sized from PJRT_NPROC, else NPROC, else the cores:
# xla/pjrt/utils.cc DefaultThreadPoolSize). With one thread per core, an all-reduce waiting on a pool thread can take the threads the other devices need to reach it:
# 2 devices on 2 cores deadlocked on the first 100-step run; 4 per device passed the stress test (RESULTS.md).
THREADS_PER_DEVICE = 4


def usable_cores() -> int:
    """Physical cores this process may use: its affinity mask (taskset), cgroup CPU quota and the core count."""
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
    own intra-op threading on these models), with the XLA threads their all-reduces need (THREADS_PER_DEVICE; a
    user's PJRT_NPROC or NPROC wins), also for a count the user set in XLA_FLAGS. Does nothing else when the user set the
    count, a backend already started, or an accelerator plugin is installed. Returns the count set, or None."""
    flags = os.environ.get("XLA_FLAGS", "")
    xla_bridge = sys.modules.get("jax._src.xla_bridge")  # not imported: no backend can have started
    if xla_bridge is not None and xla_bridge._backends:
        return None
    given = re.search(r"xla_force_host_platform_device_count=(\d+)", flags)
    if given:  # the user's count: still give it the threads it needs
        set_threads(int(given.group(1)))
        return None
    if any(importlib.util.find_spec(p) for p in ("jax_cuda12_plugin", "jax_cuda13_plugin", "libtpu", "jax_rocm60_plugin")):
        return None
    count = cpu_device_count(setting, batch_sizes)
    os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={count}".strip()
    set_threads(count)
    return count


def set_threads(devices: int) -> None:
    """XLA's thread pools sized for `devices` CPU devices (THREADS_PER_DEVICE each), unless the user sized them."""
    if devices > 1 and not (os.environ.get("PJRT_NPROC") or os.environ.get("NPROC")):
        os.environ["PJRT_NPROC"] = str(xla_threads(devices))


def xla_threads(devices: int) -> int:
    """The XLA thread-pool size (PJRT_NPROC) for `devices` CPU devices in one process (also for tests' subprocesses)."""
    return max(usable_cores(), THREADS_PER_DEVICE * devices) if devices > 1 else usable_cores()
