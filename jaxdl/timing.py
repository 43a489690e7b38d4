"""Latency of several forward passes measured the one way every report uses (export, compress, benchmarks).

Calls are interleaved (A, B, A, B, ...) after one warm-up call each (which compiles), so load from other
work on the machine hits every forward alike: the ratios between them are what to read.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable, Mapping, Sequence

import jax
import numpy as np

Timings = tuple[dict[int, float], dict[int, float]]  # (median, fastest) milliseconds per batch size


def latencies(
    forwards: Mapping[str, Callable[[Any], Any]],
    inputs: np.ndarray,
    batch_sizes: Sequence[int],
    repeats: int,
    device: jax.Device | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, Timings]:
    """(median, min) milliseconds per call of each forward at each batch size (`inputs` repeated to fill it);
    on `device` (a jax array) if given, else the numpy batch itself (what a non-JAX runtime takes).
    `clock=time.process_time` counts this process's CPU time instead of wall time: on a machine crowded by
    other work, with single-threaded runtimes, it measures the work a call costs rather than its waiting."""
    result: dict[str, Timings] = {name: ({}, {}) for name in forwards}
    for batch in batch_sizes:
        x = np.resize(inputs, (batch, *inputs.shape[1:]))
        if device is not None:
            x = jax.device_put(x, device)
        times: dict[str, list[float]] = {name: [] for name in forwards}
        for forward in forwards.values():
            jax.block_until_ready(forward(x))
        for _ in range(repeats):
            for name, forward in forwards.items():
                start = clock()
                jax.block_until_ready(forward(x))
                times[name].append(clock() - start)
        for name, seconds in times.items():
            result[name][0][batch] = 1000 * statistics.median(seconds)
            result[name][1][batch] = 1000 * min(seconds)
    return result
