"""The one interface every data source returns: uint8 images in NHWC with int labels."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from jaxdl.errors import DataError


@dataclasses.dataclass(frozen=True)
class Split:
    """One split of a classification data set as NHWC: uint8 pixels (0..255) or float32 signals.

    Sequences and 1-D signals use the same layout, e.g. (N, 1, length, channels).
    """

    images: np.ndarray
    labels: np.ndarray

    def __post_init__(self):
        if self.images.ndim != 4 or self.images.dtype not in (np.uint8, np.float32):
            raise DataError(f"images must be uint8 or float32 NHWC, got {self.images.dtype} {self.images.shape}")
        if len(self.images) != len(self.labels):
            raise DataError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: np.ndarray) -> "Split":
        return Split(self.images[indices], self.labels[indices])

    def stats_images(self) -> np.ndarray:
        """The images the channel statistics are computed from: all of them."""
        return self.images


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Train / validation / test splits plus what a model needs to know about them."""

    name: str
    train: Split
    val: Split
    test: Split
    class_names: tuple[str, ...]
    bad_files: Any = None  # `images.BadFiles` of a source that reads files (data.on_bad_file=skip)

    def __post_init__(self):
        if len(self.class_names) < 2:
            raise DataError(f"data set '{self.name}' has {len(self.class_names)} class(es); a classifier needs at least 2")
        for split_name in ("train", "val", "test"):
            split = getattr(self, split_name)
            if split_name != "val" and not len(split):
                raise DataError(f"the {split_name} split of '{self.name}' is empty; check the data source and its fractions")
            bad = split.labels[(split.labels < 0) | (split.labels >= len(self.class_names))]
            if bad.size:
                raise DataError(
                    f"the {split_name} split of '{self.name}' has label {int(bad[0])}, outside 0..{len(self.class_names) - 1} "
                    f"({len(self.class_names)} classes); fix the labels or the class names"
                )
            if split.images.dtype == np.float32 and not np.isfinite(split.images).all():
                raise DataError(f"the {split_name} split of '{self.name}' holds NaN or infinite values; clean the inputs")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.images.shape[1:])  # type: ignore[return-value]

    def channel_stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and std of the training inputs, in the units `Preprocess` sees (uint8 / 255)."""
        images = self.train.stats_images()
        pixels = np.asarray(images).reshape(-1, self.image_shape[-1]).astype(np.float64)
        if images.dtype == np.uint8:
            pixels /= 255.0
        std = np.maximum(pixels.std(axis=0), 1e-3)
        return tuple(pixels.mean(axis=0).tolist()), tuple(std.tolist())


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, holdout) with `fraction` of every class held out, reproducibly."""
    if not 0.0 <= fraction < 1.0:
        raise DataError(f"a split fraction must be in [0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    keep, hold = [], []
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        n_hold = int(round(fraction * len(idx)))
        hold.append(idx[:n_hold])
        keep.append(idx[n_hold:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(hold))


def carve(split: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    """Split off a stratified `fraction` of `split` (e.g. a validation set from train)."""
    keep, hold = stratified_holdout(split.labels, fraction, seed)
    return split.subset(keep), split.subset(hold)
