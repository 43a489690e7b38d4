"""Streaming input through Grain: files decoded and augmented in worker threads, uint8 batches to the mesh.

`StreamLoader` offers the interface of `pipeline.Loader` (`train_batches`, `eval_batches`, `len`), so
the trainer cannot tell them apart. The epoch order is `epoch_order(seed, epoch)` like the in-memory
path, over this process's shard (examples p, p + count, ...), and every random crop is drawn from
(seed, epoch, position), so a run resumed at an epoch boundary reads exactly what it would have; one
resumed mid-epoch restores the Grain iterator's state from its checkpoint and does too.
Threads (`grain.ReadOptions`) rather than worker processes: PIL releases the GIL while decoding,
and on few cores processes lose their start-up cost (measured in /work/shared/DESIGN.md's notes).
A bad training file is replaced by the next example of a spare permutation, so every step still gets
a full batch and all processes take the same number of steps.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxdl.data.base import Split
from jaxdl.data.file_split import FileSplit, RecordSplit
from jaxdl.data.pipeline import EpochBatches, Loader, check_position, epoch_order, eval_plan
from jaxdl.errors import DataError

if TYPE_CHECKING:
    import grain  # imported where used: a second of start-up that in-memory data never needs


# Training examples decoded per Grain element: Grain's per-element cost spread over several images
# (measured on 500 px JPEGs, 2 threads: ~770 images/s one per element, ~840 eight per element).
CHUNK = 8


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def _read_options(workers: int, batch_size: int) -> grain.ReadOptions:
    import grain

    return grain.ReadOptions(num_threads=workers, prefetch_buffer_size=max(64, 2 * batch_size))


def decode_all(split: FileSplit) -> Split:
    """The readable images of `split` decoded (evaluation transform) into memory, in order; bad ones dropped."""
    import grain

    decoder, paths = split.decoder, split.paths
    decoded = (
        grain.MapDataset.source(np.arange(len(split)))
        .map(lambda i: (decoder(str(paths[i])), i))
        .to_iter_dataset(_read_options(split.workers, 256))
    )
    images, keep = [], []
    for image, i in decoded:
        if image is not None:
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
        split, labels = self.split, self.split.labels
        steps = len(order) // local_batch
        start = check_position(position, steps)

        def load(chunk: int):
            """Examples chunk*CHUNK ... of the stream, bad files left out (None if all are bad)."""
            images, kept = [], []
            for index in range(chunk * CHUNK, min((chunk + 1) * CHUNK, len(stream))):
                image = split.load(stream[index], np.random.default_rng([seed, epoch, index]))
                if image is not None:
                    images.append(image)
                    kept.append(stream[index])
            return (np.stack(images), labels[np.asarray(kept)]) if images else None

        chunks = (
            grain.MapDataset.source(np.arange(-(-len(stream) // CHUNK)))
            .map(load)
            .to_iter_dataset(
                grain.ReadOptions(num_threads=self.split.workers, prefetch_buffer_size=2 * (local_batch // CHUNK + 1))
            )
        )
        batches = grain.experimental.RebatchIterDataset(chunks, local_batch, drop_remainder=True)
        batches = iter(grain.experimental.ThreadPrefetchIterDataset(batches, prefetch_buffer_size=2))
        if start:
            batches.set_state(position["grain"])

        def global_batches() -> Iterator[tuple[jax.Array, jax.Array]]:
            for _ in range(start, steps):
                batch = next(batches, None)
                if batch is None:
                    raise DataError(
                        f"too many unreadable training files: fewer than {len(order)} of {2 * len(order)} "
                        "tries decoded; see data_errors.txt"
                    )
                yield self._global(*batch)

        return EpochBatches(global_batches(), start, steps, batches.get_state)

    def eval_batches(self, batch_size: int) -> Iterator[tuple[jax.Array, jax.Array, np.ndarray]]:
        """Every example once: (images, labels, ids) as `Loader.eval_batches`; a bad file's label is -1."""
        import grain

        plan = list(eval_plan(self.num_examples, self.process_index, self.process_count, batch_size))
        if not plan:
            return
        split, labels = self.split, self.split.labels
        shard = self.shard if len(self.shard) else np.zeros(1, np.int64)

        def load(i: int):
            image = split.load(i)
            return (np.zeros(split.image_shape, np.uint8), np.int32(-1)) if image is None else (image, labels[i])

        positions = shard[np.concatenate([local for local, _ in plan])]
        batches = (
            grain.MapDataset.source(positions)
            .map(load)
            .to_iter_dataset(_read_options(self.split.workers, len(plan[0][0])))
            .batch(len(plan[0][0]), drop_remainder=False)
        )
        for (images, batch_labels), (_, ids) in zip(batches, plan, strict=True):
            yield (*self._global(images, batch_labels.astype(np.int32)), ids)


def loader_for(split: Split | FileSplit | RecordSplit, mesh: Mesh, on_device: bool | None = None) -> Loader | StreamLoader:
    """The loader of a split: streamed from files or records, or the in-memory `Loader`."""
    return Loader(split, mesh, on_device) if isinstance(split, Split) else StreamLoader(split, mesh)
