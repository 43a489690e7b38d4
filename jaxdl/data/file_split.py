"""Splits whose images stay in files or records until a batch needs them (the streamed path).

`FileSplit` (image files) and `RecordSplit` (a random-access record source, e.g. TFDS ArrayRecord)
have the interface of `Split` that the rest of jaxdl uses (`labels`, `images[...]`, `subset`,
`len`), so tools that index a few test images (misclassified grids, explanations, compression
reports) work unchanged: `images[i]` reads one example (files: the evaluation transform).
Both add `load(i, rng)`, what the streaming loader calls in its worker threads.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from jaxdl.data.images import ImageDecoder

STATS_SAMPLE = 2000  # training images decoded to estimate the channel mean / std of a streamed set


class LazyImages:
    """Array-like (N, H, W, C) uint8 view of a streamed split: indexing reads (bad files read as zeros)."""

    dtype = np.dtype(np.uint8)
    ndim = 4

    def __init__(self, split: FileSplit | RecordSplit):
        self.split = split

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.split), *self.split.image_shape)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape))

    def __len__(self) -> int:
        return len(self.split)

    def _one(self, i: int) -> np.ndarray:
        image = self.split.load(i)
        return np.zeros(self.split.image_shape, np.uint8) if image is None else image

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self._one(int(key))
        indices = np.arange(len(self))[key]
        with ThreadPoolExecutor(max(1, self.split.workers)) as pool:
            images = list(pool.map(self._one, indices.tolist()))
        return np.stack(images) if images else np.zeros((0, *self.shape[1:]), np.uint8)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        array = self[:]
        return array if dtype is None else array.astype(dtype)


class _Streamed:
    """What both streamed splits share: lazy images, subsets, a sample for the channel statistics."""

    labels: np.ndarray
    workers: int
    worker_mode: str = "thread"  # process | thread: how `workers` decode (`jaxdl.data.workers`)
    worker_threads: int = 0  # read threads per worker process; 0: its share of the cores

    def __len__(self) -> int:
        return len(self.labels)

    def try_load(self, i: int, rng: np.random.Generator | None = None) -> tuple[np.ndarray | None, str]:
        """(example i, "") or (None, its `file<TAB>reason` bad-file line): what a worker process hands back."""
        return self.load(i, rng), ""

    def record_bad(self, lines: tuple[str, ...]) -> None:
        """Bad files a worker met, recorded here (records cannot be bad files)."""

    @property
    def images(self) -> LazyImages:
        return LazyImages(self)

    def stats_images(self) -> np.ndarray:
        """A seeded sample of at most `STATS_SAMPLE` training images (all of them in smaller sets)."""
        if len(self) <= STATS_SAMPLE:
            return self.images[:]
        return self.images[np.sort(np.random.default_rng(0).choice(len(self), STATS_SAMPLE, replace=False))]


@dataclasses.dataclass(frozen=True)
class FileSplit(_Streamed):
    """Image files and their labels, decoded by `decoder` (which also augments, given an rng)."""

    paths: np.ndarray  # str paths
    labels: np.ndarray  # int32
    decoder: ImageDecoder
    workers: int = 2
    worker_mode: str = "thread"
    backend: str = "host"  # host: decoded by `decoder` in workers | dali: by DALI on the GPU (`jaxdl.data.dali`)
    worker_threads: int = 0
    augments_in_workers = True

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.decoder.size, self.decoder.size, self.decoder.channels)

    def load(self, i: int, rng: np.random.Generator | None = None) -> np.ndarray | None:
        return self.decoder(str(self.paths[i]), rng)

    def try_load(self, i: int, rng: np.random.Generator | None = None) -> tuple[np.ndarray | None, str]:
        image, reason = self.decoder.try_decode(str(self.paths[i]), rng)
        return image, "" if image is not None else f"{self.paths[i]}\t{reason}"

    def record_bad(self, lines: tuple[str, ...]) -> None:
        for line in lines:
            path, _, reason = line.partition("\t")
            self.decoder.bad_files.record(path, reason)

    def subset(self, indices: np.ndarray) -> FileSplit:
        return dataclasses.replace(self, paths=self.paths[indices], labels=self.labels[indices])


@dataclasses.dataclass(frozen=True)
class RecordSplit(_Streamed):
    """Examples `indices` of a random-access source (`source[i][image_key]`): read by index, never all at once.

    Augmentation stays in the jitted step, as for in-memory data."""

    source: Any
    indices: np.ndarray
    labels: np.ndarray
    image_shape: tuple[int, int, int]
    image_key: str = "image"
    workers: int = 2
    augments_in_workers = False

    def load(self, i: int, rng: np.random.Generator | None = None) -> np.ndarray:
        return np.asarray(self.source[int(self.indices[i])][self.image_key], np.uint8).reshape(self.image_shape)

    def subset(self, indices: np.ndarray) -> RecordSplit:
        return dataclasses.replace(self, indices=self.indices[indices], labels=self.labels[indices])
