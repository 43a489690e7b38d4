"""scikit-learn's 1,797 real 8x8 handwritten digits: the embedded default data set."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np

from jaxdl.data.base import Dataset, Split, carve


def digits_file() -> Path | None:
    """The CSV scikit-learn ships the digits in, found without importing scikit-learn (1.5 s of start-up)."""
    spec = importlib.util.find_spec("sklearn")
    for root in (spec and spec.submodule_search_locations) or ():
        path = Path(root) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            return path
    return None


def read_digits() -> tuple[np.ndarray, np.ndarray]:
    """(images (1797, 8, 8) with values 0..16, labels): the file `sklearn.datasets.load_digits` reads."""
    path = digits_file()
    if path is None:  # a scikit-learn that keeps its data elsewhere
        from sklearn.datasets import load_digits

        digits = load_digits()
        return digits.images, digits.target
    with gzip.open(path, "rt") as f:
        data = np.loadtxt(f, delimiter=",")
    return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int)


def load(test_fraction: float = 0.2, val_fraction: float = 0.1, split_seed: int = 0) -> Dataset:
    images, labels = read_digits()
    # Pixel values are 0..16; rescale to the usual 0..255 byte range.
    images = np.round(images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    full = Split(images, labels.astype(np.int32))
    rest, test = carve(full, test_fraction, split_seed)
    train, val = carve(rest, val_fraction, split_seed + 1)
    return Dataset("digits", train, val, test, tuple(str(d) for d in range(10)))
