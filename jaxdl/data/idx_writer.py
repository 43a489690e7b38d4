"""Write MNIST-format (IDX) files, so generated data sets load with `data=idx` like any other."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from jaxdl.data.base import Split
from jaxdl.errors import DataError

_TYPE_CODES = {
    np.dtype(np.uint8): 0x08,
    np.dtype(np.int8): 0x09,
    np.dtype(">i2"): 0x0B,
    np.dtype(">i4"): 0x0C,
    np.dtype(">f4"): 0x0D,
    np.dtype(">f8"): 0x0E,
}


def write_idx(path: Path, array: np.ndarray) -> None:
    """One IDX file (gzipped when `path` ends in .gz), the inverse of `idx.read_idx`."""
    array = np.asarray(array)
    if array.dtype.kind in "iuf" and array.dtype.itemsize > 1:
        array = array.astype(array.dtype.newbyteorder(">"))
    if array.dtype not in _TYPE_CODES:
        raise DataError(f"IDX cannot store dtype {array.dtype}; use uint8, int8, int16, int32, float32 or float64")
    header = bytes([0, 0, _TYPE_CODES[array.dtype], array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    opener = gzip.open if Path(path).suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(header + np.ascontiguousarray(array).tobytes())


def write_pair(directory: Path, prefix: str, split: Split) -> tuple[Path, Path]:
    """`{prefix}-images-idx3-ubyte.gz` and `{prefix}-labels-idx1-ubyte.gz` of a uint8 single-channel split."""
    if split.images.dtype != np.uint8 or split.images.shape[-1] != 1:
        raise DataError(
            f"IDX image files hold uint8 grey images; got {split.images.dtype} with {split.images.shape[-1]} channels"
        )
    if split.labels.min(initial=0) < 0 or split.labels.max(initial=0) > 255:
        raise DataError("IDX label files hold labels 0..255")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    images, labels = directory / f"{prefix}-images-idx3-ubyte.gz", directory / f"{prefix}-labels-idx1-ubyte.gz"
    write_idx(images, split.images[..., 0])
    write_idx(labels, split.labels.astype(np.uint8))
    return images, labels
