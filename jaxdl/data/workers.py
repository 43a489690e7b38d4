"""Where streamed examples are decoded: in this process, in Grain threads, or in Grain worker processes.

`data.workers=N` with `data.worker_mode=process` decodes and augments in N processes (Grain's `mp_prefetch`:
each worker reads every N-th element and Grain interleaves them back in order, so the batches a seed yields
do not depend on N or on the mode); each worker runs `cores // N` read threads (`data.worker_threads`
overrides it), so N workers never oversubscribe the cores. `thread` runs N Grain threads in this process (PIL and libjpeg-turbo release the
GIL while they work, but the Python around them does not). `auto` picks processes from 4 usable cores up,
threads below. Measured in experiments/RESULTS.md, issue 22: on 16 cores threads decoded ~40 images/s per
core (the GIL); on 2 cores, since a Grain element holds whole batches (session 9), processes are the faster
mode once started (quiet: 28-px PNGs 2.42x torchvision's rate against 1.02x with threads, photos 1.97x
against 1.71x), but they take 4-5 s to start every epoch (spawn and imports) where threads take 0.1-0.2 s,
a quarter of a Fashion-MNIST-sized epoch, so threads stay.

Grain starts its workers with the `spawn` method, and a spawned child normally re-imports the parent's
`__main__`: a user's script without an `if __name__ == "__main__"` guard would run again, and `jaxdl-train`'s
console script would import all of jaxdl's training code in every worker. The workers need nothing from
`__main__` (their pipeline is cloudpickled and names jaxdl's modules only), so `_install_spawn_hook` drops the
re-import for Grain's workers, whatever launched the run (console script, Hydra multirun, submitit,
`jax.distributed`). Grain 0.2.18 imports JAX in every worker itself (its profiler), so a worker sets
`jax_platforms=cpu` before anything can initialise a backend: JAX is imported there, never given a GPU.
This module imports no JAX itself: nothing here needs it.
"""

from __future__ import annotations

import functools
import gc
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from jaxdl.errors import ConfigError

if TYPE_CHECKING:
    import grain

WORKER_MODES = ("auto", "process", "thread")
PROCESS_FROM_CORES = 4  # `auto`: worker processes from this many usable cores up, threads below
GRAIN_WORKER_NAME = "grain-process-prefetch"  # the name Grain gives its worker processes


def usable_cores() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def resolve_mode(mode: str, workers: int) -> str:
    """`process` or `thread`: what `data.worker_mode` means for `workers` workers on this machine."""
    mode = str(mode).lower()
    if mode not in WORKER_MODES:
        raise ConfigError(f"data.worker_mode must be auto, process or thread, got '{mode}'")
    if mode == "auto":
        return "process" if usable_cores() >= PROCESS_FROM_CORES and workers > 1 else "thread"
    return mode


def worker_threads(value: int | None) -> int:
    """`data.worker_threads`: read threads per worker process, 0 for auto (`null`: the cores // workers)."""
    if value is None or str(value) == "auto":
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"data.worker_threads must be a positive whole number or null (auto), got {value!r}")
    return value


def _worker_init(index: int, count: int) -> None:
    """Runs first in every worker process: JAX (Grain itself imports it) stays off the accelerators, and the
    modules imported so far leave the garbage collector's reach (`gc.freeze`): they live as long as the worker,
    and walking them in every full collection and again at exit cost a worker ~1 s of CPU per epoch (measured
    on this 2-core CPU, experiments/RESULTS.md issue 22)."""
    os.environ["JAX_PLATFORMS"] = "cpu"
    if "jax" in sys.modules:  # imported, not initialised: no backend has taken device memory yet
        sys.modules["jax"].config.update("jax_platforms", "cpu")
    gc.freeze()


def _without_main(get_preparation_data: Callable[[str], dict]) -> Callable[[str], dict]:
    @functools.wraps(get_preparation_data)
    def prepare(name: str) -> dict:
        data = get_preparation_data(name)
        if name.startswith(GRAIN_WORKER_NAME):
            data.pop("init_main_from_name", None)
            data.pop("init_main_from_path", None)
        return data

    prepare.jaxdl_without_main = True
    return prepare


def _install_spawn_hook() -> None:
    """Grain's workers start without re-importing `__main__`; other processes are left as they were."""
    from multiprocessing import spawn

    if not getattr(spawn.get_preparation_data, "jaxdl_without_main", False):
        spawn.get_preparation_data = _without_main(spawn.get_preparation_data)


def _absl_flags_parsed() -> None:
    """Grain's workers read absl flags; outside `absl.app` nobody parsed them."""
    from absl import flags

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


def parallel_map(
    indices: np.ndarray, fn: Callable[[Any], Any], workers: int, mode: str, buffer: int, threads: int = 0
) -> grain.IterDataset:
    """`fn(i)` for every `i` in `indices`, in order, computed by `workers` threads or processes (0: here), each
    process with `threads` read threads (0: its share of the cores).

    `fn` must pickle (a module-level class or function of jaxdl, no lambdas) when `mode` is `process`;
    a `None` result is dropped."""
    import grain

    source = grain.MapDataset.source(indices).map(fn)
    if mode == "thread" or workers == 0:
        return source.to_iter_dataset(grain.ReadOptions(num_threads=workers, prefetch_buffer_size=buffer))
    _install_spawn_hook()
    _absl_flags_parsed()
    per_worker = threads or max(1, usable_cores() // workers)
    return source.to_iter_dataset(
        grain.ReadOptions(num_threads=per_worker, prefetch_buffer_size=max(2, buffer // workers))
    ).mp_prefetch(
        grain.MultiprocessingOptions(num_workers=workers, per_worker_buffer_size=max(2, buffer // workers)),
        worker_init_fn=_worker_init,
    )


class TrainChunks:
    """Training chunk k: examples k*size ... of `stream` decoded with the training transform, each from the rng
    (seed, epoch, position), so what a chunk holds depends on nothing but its number.

    Returns (images, labels, bad-file lines); (None, None, lines) when every file of the chunk is bad."""

    def __init__(self, split: Any, stream: np.ndarray, seed: int, epoch: int, size: int):
        self.split, self.stream, self.seed, self.epoch, self.size = split, stream, seed, epoch, size

    def __call__(self, chunk: int) -> tuple[np.ndarray | None, np.ndarray | None, tuple[str, ...]]:
        images, kept, bad = [], [], []
        for position in range(chunk * self.size, min((chunk + 1) * self.size, len(self.stream))):
            image, line = self.split.try_load(self.stream[position], np.random.default_rng([self.seed, self.epoch, position]))
            if image is None:
                bad.append(line)
            else:
                images.append(image)
                kept.append(self.stream[position])
        if not images:
            return None, None, tuple(bad)
        return np.stack(images), self.split.labels[np.asarray(kept)], tuple(bad)


class EvalExamples:
    """Example i with the evaluation transform: (image, label, bad-file lines); zeros and label -1 for a bad file."""

    def __init__(self, split: Any):
        self.split = split

    def __call__(self, i: int) -> tuple[np.ndarray, np.int32, tuple[str, ...]]:
        image, line = self.split.try_load(i)
        if image is None:
            return np.zeros(self.split.image_shape, np.uint8), np.int32(-1), (line,)
        return image, np.int32(self.split.labels[i]), ()
