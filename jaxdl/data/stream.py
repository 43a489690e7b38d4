"""Streaming input through Grain: files decoded and augmented in workers, uint8 batches to the mesh.

`StreamLoader` offers the interface of `pipeline.Loader` (`train_batches`, `eval_batches`, `len`), so
the trainer cannot tell them apart. The epoch order is `epoch_order(seed, epoch)` like the in-memory
path, over this process's shard (examples p, p + count, ...), and every random crop is drawn from
(seed, epoch, position), so a run resumed at an epoch boundary reads exactly what it would have; one
resumed mid-epoch restores the Grain iterator's state from its checkpoint and does too.
The workers are threads or processes (`jaxdl.data.workers`, `data.worker_mode`); both see the same
chunks in the same order, so the batches do not depend on their number or kind.
A bad training file is replaced by the next example of a spare permutation, so every step still gets
a full batch and all processes take the same number of steps.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import TYPE_CHECKING

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxdl.data.base import Split
from jaxdl.data.file_split import FileSplit, RecordSplit
from jaxdl.data.pipeline import EpochBatches, Loader, check_position, epoch_order, eval_plan
from jaxdl.data.workers import EvalExamples, TrainChunks, parallel_map, usable_cores
from jaxdl.errors import DataError

if TYPE_CHECKING:
    import grain  # imported where used: a second of start-up that in-memory data never needs


# Training examples decoded per Grain element: at least CHUNK, and a whole multiple of the local batch where
# that fits in CHUNK_BYTES, so that the training process takes each batch as one array (a view of an element),
# never concatenated from pieces. Grain's cost per element (a shared-memory segment created, mapped, unlinked
# and a queue message per worker element; a rebatch step) is then paid once per batch: on this 2-core CPU the
# training process's CPU per 224-px photo from 2 worker processes fell from 0.27-0.31 ms (8 examples per
# element) to 0.06-0.07 (one 64-image batch per element; experiments/RESULTS.md, issue 22, session 9).
CHUNK = 32
CHUNK_BYTES = 64 << 20  # the most pixels per element (e.g. 256 images of 224 x 224 x 3 take 38.5 MB)
OLD_CHUNK = 8  # the examples per element of positions saved before the `examples_per_element` key existed


def default_workers() -> int:
    return usable_cores()


def examples_per_element(local_batch: int, image_bytes: int, max_bytes: int = CHUNK_BYTES) -> int:
    """Training examples per Grain element: the smallest multiple of `local_batch` holding at least `CHUNK`,
    or, where that exceeds `max_bytes`, the largest divisor of `local_batch` that fits (at least 1).

    The batches do not depend on it (every crop comes from its stream position); a Grain state does."""
    size = local_batch * -(-CHUNK // local_batch)
    if size * image_bytes <= max_bytes:
        return size
    fits = max(1, max_bytes // max(1, image_bytes))
    return max(d for d in range(1, min(fits, local_batch) + 1) if local_batch % d == 0)


def element_bytes_budget(workers: int, mode: str, shm: str = "/dev/shm") -> int:
    """The most bytes an element may take: worker processes hand elements over through shared memory, several
    in flight per worker, and a container's /dev/shm can be small (Docker's default is 64 MB), so they get an
    eighth of its free space per worker, at most `CHUNK_BYTES`."""
    if mode != "process" or workers == 0 or not os.path.isdir(shm):
        return CHUNK_BYTES
    return max(1, min(CHUNK_BYTES, shutil.disk_usage(shm).free // (8 * workers)))


def _eval_examples(split: FileSplit | RecordSplit, positions: np.ndarray, buffer: int) -> grain.IterDataset:
    """(image, label) of every example at `positions`, evaluation transform; bad files recorded, as zeros, label -1."""

    def recorded(element):
        image, label, bad = element
        split.record_bad(bad)
        return image, label

    examples = parallel_map(
        positions, EvalExamples(split), split.workers, split.worker_mode, max(64, 2 * buffer), split.worker_threads
    )
    return examples.map(recorded)


def decode_all(split: FileSplit) -> Split:
    """The readable images of `split` decoded (evaluation transform) into memory, in order; bad ones dropped."""
    images, keep = [], []
    for i, (image, label) in enumerate(_eval_examples(split, np.arange(len(split)), 256)):
        if label >= 0:
            images.append(image)
            keep.append(i)
    if not images:
        raise DataError(f"none of the {len(split)} files of a split could be read; see the bad files listed")
    return Split(np.stack(images), split.labels[np.asarray(keep)])


class StreamLoader:
    """Batches of a `FileSplit` or `RecordSplit`, read by Grain threads, sharded over the mesh's `data` axis."""

    def __init__(self, split: FileSplit | RecordSplit, mesh: Mesh):
        self.num_examples = len(split)
        self.process_index, self.process_count = jax.process_index(), jax.process_count()
        self.shard = np.arange(self.process_index, self.num_examples, self.process_count)
        self.split = split
        self.batch_sharding = NamedSharding(mesh, P("data"))

    def __len__(self) -> int:
        return self.num_examples

    def _global(self, images: np.ndarray, labels: np.ndarray) -> tuple[jax.Array, jax.Array]:
        return (
            jax.make_array_from_process_local_data(self.batch_sharding, images),
            jax.make_array_from_process_local_data(self.batch_sharding, labels),
        )

    def train_order(self, batch_size: int, seed: int, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(split indices this process reads in the epoch, spare indices that replace bad files)."""
        shard_size = self.num_examples // self.process_count
        order = epoch_order(shard_size, batch_size // self.process_count, seed, epoch).reshape(-1)
        spare = np.random.default_rng([seed, epoch, 1]).permutation(shard_size)
        return self.shard[order], self.shard[spare]

    def train_batches(self, batch_size: int, seed: int, epoch: int, position: dict | None = None) -> EpochBatches:
        """Global batches of `batch_size` with the training transform; each process decodes its shard only.

        `position`: an `EpochBatches.get_state()` of this epoch; the Grain iterator goes on from its state,
        so the examples after a mid-epoch checkpoint (bad files skipped included) are the same ones."""
        import grain

        local_batch = batch_size // self.process_count
        order, spare = self.train_order(batch_size, seed, epoch)
        stream = np.concatenate([order, spare])
        split = self.split
        steps = len(order) // local_batch
        start = check_position(position, steps)
        # a position's Grain state counts the elements of its own size: the epoch goes on in that size (the
        # batches do not depend on it), and the next epoch takes this version's
        if start:
            size = int(position.get("examples_per_element", OLD_CHUNK))
        else:
            budget = element_bytes_budget(split.workers, split.worker_mode)
            size = examples_per_element(local_batch, int(np.prod(split.image_shape)), budget)

        def kept(element):
            images, labels, bad = element
            split.record_bad(bad)
            return None if images is None else (images, labels)

        chunks = parallel_map(
            np.arange(-(-len(stream) // size)),
            TrainChunks(split, stream, seed, epoch, size),
            split.workers,
            split.worker_mode,
            max(2 * (local_batch // size + 1), 2 * split.workers),  # every worker busy, a batch ahead
            split.worker_threads,
        )
        chunks = chunks.map(kept).filter(lambda element: element is not None)
        batches = grain.experimental.RebatchIterDataset(chunks, local_batch, drop_remainder=True)
        batches = iter(grain.experimental.ThreadPrefetchIterDataset(batches, prefetch_buffer_size=2))
        if start:
            batches.set_state(position["grain"])

        def global_batches() -> Iterator[tuple[jax.Array, jax.Array]]:
            try:
                for _ in range(start, steps):
                    batch = next(batches, None)
                    if batch is None:
                        raise DataError(
                            f"too many unreadable training files: fewer than {len(order)} of {2 * len(order)} "
                            "tries decoded; see data_errors.txt"
                        )
                    yield self._global(*batch)
            finally:
                batches.close()  # worker processes end with the epoch, not at garbage collection

        return EpochBatches(global_batches(), start, steps, batches.get_state, {"examples_per_element": size})

    def eval_batches(self, batch_size: int) -> Iterator[tuple[jax.Array, jax.Array, np.ndarray]]:
        """Every example once: (images, labels, ids) as `Loader.eval_batches`; a bad file's label is -1."""

        plan = list(eval_plan(self.num_examples, self.process_index, self.process_count, batch_size))
        if not plan:
            return
        shard = self.shard if len(self.shard) else np.zeros(1, np.int64)
        positions = shard[np.concatenate([local for local, _ in plan])]
        batches = _eval_examples(self.split, positions, len(plan[0][0])).batch(len(plan[0][0]), drop_remainder=False)
        for (images, batch_labels), (_, ids) in zip(batches, plan, strict=True):
            yield (*self._global(images, batch_labels.astype(np.int32)), ids)


def loader_for(split: Split | FileSplit | RecordSplit, mesh: Mesh, on_device: bool | None = None) -> Loader | StreamLoader:
    """The loader of a split: streamed from files or records (decoded by DALI where the split says so), or the
    in-memory `Loader`."""
    if isinstance(split, Split):
        return Loader(split, mesh, on_device)
    if getattr(split, "backend", "host") == "dali":
        from jaxdl.data.dali import DaliLoader

        return DaliLoader(split, mesh)
    return StreamLoader(split, mesh)
