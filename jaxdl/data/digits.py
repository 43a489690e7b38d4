"""scikit-learn's 1,797 real 8x8 handwritten digits: the embedded default data set."""

from __future__ import annotations

import numpy as np

from jaxdl.data.base import Dataset, Split, carve


def load(test_fraction: float = 0.2, val_fraction: float = 0.1, split_seed: int = 0) -> Dataset:
    from sklearn.datasets import load_digits  # scikit-learn takes a second to import: only when used

    digits = load_digits()
    # Pixel values are 0..16; rescale to the usual 0..255 byte range.
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    full = Split(images, digits.target.astype(np.int32))
    rest, test = carve(full, test_fraction, split_seed)
    train, val = carve(rest, val_fraction, split_seed + 1)
    return Dataset("digits", train, val, test, tuple(str(d) for d in range(10)))
