"""A split whose images stay in files until a batch needs them (the streamed path).

`FileSplit` has the interface of `Split` that the rest of jaxdl uses (`labels`, `images[...]`,
`subset`, `len`), so tools that index a few test images (misclassified grids, explanations,
compression reports) work unchanged: `images[i]` decodes with the evaluation transform.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from jaxdl.data.images import ImageDecoder

STATS_SAMPLE = 2000  # training images decoded to estimate the channel mean / std of a streamed set


class LazyImages:
    """Array-like (N, size, size, C) uint8 view of a `FileSplit`: indexing decodes (bad files read as zeros)."""

    dtype = np.dtype(np.uint8)
    ndim = 4

    def __init__(self, split: "FileSplit"):
        self.split = split

    @property
    def shape(self) -> tuple[int, int, int, int]:
        d = self.split.decoder
        return (len(self.split), d.size, d.size, d.channels)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape))

    def __len__(self) -> int:
        return len(self.split)

    def _one(self, i: int) -> np.ndarray:
        image = self.split.decoder(str(self.split.paths[i]))
        return self.split.decoder.blank() if image is None else image

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self._one(int(key))
        indices = np.arange(len(self))[key]
        with ThreadPoolExecutor(self.split.workers) as pool:
            images = list(pool.map(self._one, indices.tolist()))
        return np.stack(images) if images else np.zeros((0, *self.shape[1:]), np.uint8)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        array = self[:]
        return array if dtype is None else array.astype(dtype)


@dataclasses.dataclass(frozen=True)
class FileSplit:
    """Image files and their labels, decoded by `decoder` on demand."""

    paths: np.ndarray  # str paths
    labels: np.ndarray  # int32
    decoder: ImageDecoder
    workers: int = 2

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def images(self) -> LazyImages:
        return LazyImages(self)

    def subset(self, indices: np.ndarray) -> "FileSplit":
        return dataclasses.replace(self, paths=self.paths[indices], labels=self.labels[indices])

    def stats_images(self, seed: int = 0) -> np.ndarray:
        """A seeded sample of at most `STATS_SAMPLE` training images (all of them in smaller sets)."""
        if len(self) <= STATS_SAMPLE:
            return self.images[:]
        return self.images[np.sort(np.random.default_rng(seed).choice(len(self), STATS_SAMPLE, replace=False))]
