"""MNIST-format (IDX) files from a directory: MNIST, Fashion-MNIST, KMNIST and friends."""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from jaxdl.data.base import Dataset, Split, carve
from jaxdl.errors import DataError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

# How non-uint8 IDX images become pixels (`data.pixels`): never silently (a cast wraps 256 to 0 and
# turns floats in [0, 1] into 0/1 pixels).
PIXEL_CONVERSIONS = {"uint8": None, "unit": (0.0, 1.0), "byte": (0.0, 255.0)}


def to_pixels(images: np.ndarray, path: Path, pixels: str = "uint8") -> np.ndarray:
    """`images` as uint8: unchanged when stored as uint8; else converted as `pixels` says, range-checked."""
    if pixels not in PIXEL_CONVERSIONS:
        raise DataError(f"data.pixels must be one of {', '.join(PIXEL_CONVERSIONS)}, got '{pixels}'")
    if images.dtype == np.uint8:
        return images
    values = images.astype(np.float64)
    if not np.isfinite(values).all():
        raise DataError(f"{path} holds NaN or infinite pixel values; fix the file (images must be finite)")
    low, high = float(values.min(initial=0)), float(values.max(initial=0))
    found = f"{path} holds {images.dtype.name} images (values {low:g}..{high:g})"
    span = PIXEL_CONVERSIONS[pixels]
    if span is None:
        raise DataError(
            f"{found}, not uint8; say how they map to pixels: data.pixels=unit (floats in [0, 1]) or data.pixels=byte ([0, 255])"
        )
    if low < span[0] or high > span[1]:
        raise DataError(f"{found}, outside the range [{span[0]:g}, {span[1]:g}] of data.pixels={pixels}")
    return np.rint(values * (255.0 / span[1])).astype(np.uint8)


def read_idx(path: Path) -> np.ndarray:
    """Parse one IDX file (optionally gzipped), checking the header against the payload."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as err:
        raise DataError(f"cannot read IDX file {path}: {err} (truncated or not gzip?)") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"IDX file {path} is truncated inside its header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(
            f"IDX file {path} is truncated or malformed: header says shape {shape} "
            f"({expected} bytes) but {len(raw) - header} bytes follow"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def _find(directory: Path, prefix: str, kind: str) -> Path | None:
    rank = 3 if kind == "images" else 1
    for name in (f"{prefix}-{kind}-idx{rank}-ubyte", f"{prefix}-{kind}-idx{rank}-ubyte.gz"):
        if (directory / name).exists():
            return directory / name
    return None


def read_pair(directory: Path, prefix: str, pixels: str = "uint8") -> Split:
    """Read `{prefix}-images-idx3-ubyte[.gz]` and the matching labels file (`pixels`: see `to_pixels`)."""
    images_path, labels_path = _find(directory, prefix, "images"), _find(directory, prefix, "labels")
    if images_path is None or labels_path is None:
        raise DataError(f"no '{prefix}-images-idx3-ubyte[.gz]' / '{prefix}-labels-idx1-ubyte[.gz]' in {directory}")
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or labels.ndim != 1:
        raise DataError(f"{images_path} must hold N x H x W images and {labels_path} N labels")
    if len(images) != len(labels):
        raise DataError(f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels")
    return Split(np.ascontiguousarray(to_pixels(images, images_path, pixels)[..., None]), labels.astype(np.int32))


def has_pair(directory: Path, prefix: str) -> bool:
    return _find(directory, prefix, "images") is not None and _find(directory, prefix, "labels") is not None


def find_directory(candidates: Sequence[str], test_prefix: str) -> Path | None:
    """The first candidate directory that holds the test files, with `~` and variables expanded."""
    for candidate in candidates:
        path = Path(os.path.expandvars(os.path.expanduser(str(candidate))))
        if has_pair(path, test_prefix):
            return path
    return None


def load(
    name: str,
    dirs: Sequence[str],
    class_names: Sequence[str],
    train_prefix: str = "train",
    test_prefix: str = "t10k",
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    split_seed: int = 0,
    pixels: str = "uint8",
) -> Dataset:
    """Train/val/test from IDX files; if only the test files exist, all three are carved from them."""
    directory = find_directory(dirs, test_prefix)
    if directory is None:
        raise DataError(f"no IDX files for '{name}' in {', '.join(map(str, dirs))}")
    test = read_pair(directory, test_prefix, pixels)
    if not len(test):
        raise DataError(f"the IDX files in {directory} hold no examples; point data.dirs at a directory with data")
    if has_pair(directory, train_prefix) and train_prefix != test_prefix:
        train = read_pair(directory, train_prefix, pixels)
    else:  # a test-only directory (e.g. the MNIST test set): carve every split from it
        train, test = carve(test, test_fraction, split_seed)
    if not len(train):
        raise DataError(f"the IDX files in {directory} hold no examples; point data.dirs at a directory with data")
    train, val = carve(train, val_fraction, split_seed + 1)
    if not len(train) or not len(test):
        raise DataError(f"the IDX files in {directory} hold no examples; point data.dirs at a directory with data")
    present = np.unique(np.concatenate([train.labels, val.labels, test.labels]))
    if not class_names and present.max() + 1 != len(present):
        raise DataError(
            f"the labels in {directory} are not 0..K-1 (found {present.size} distinct values up to "
            f"{int(present.max())}); relabel them, or name the classes with data.class_names"
        )
    names = tuple(class_names) if class_names else tuple(str(c) for c in range(len(present)))
    return Dataset(name, train, val, test, names)
