"""A synthetic 1-D signal classification set in the spirit of MNIST-1D (Greydanus 2020), generated in code.

Each class is a 12-point template; every example stretches it over a random window of
the sequence, scales and shears it, and adds smooth (correlated) and white noise. The
result is small, fast and hard enough that a linear model does clearly worse than a
sequence model. Signals are float32 (N, 1, length, 1): one row of `length` steps.
"""

from __future__ import annotations

import numpy as np

from jaxdl.data.base import Dataset, Split, carve
from jaxdl.errors import DataError

_T = np.linspace(0.0, 1.0, 12)
TEMPLATES = {
    "bump": np.exp(-((_T - 0.5) ** 2) / 0.02),
    "step_up": (_T > 0.5).astype(float),
    "step_down": (_T <= 0.5).astype(float),
    "ramp_up": _T,
    "ramp_down": 1.0 - _T,
    "two_bumps": np.exp(-((_T - 0.25) ** 2) / 0.01) + np.exp(-((_T - 0.75) ** 2) / 0.01),
    "sine": 0.5 + 0.5 * np.sin(2 * np.pi * _T),
    "sawtooth": (2 * _T) % 1.0,
    "spike": (np.abs(_T - 0.5) < 0.05).astype(float),
    "valley": 1.0 - np.exp(-((_T - 0.5) ** 2) / 0.02),
}


def generate(num: int, length: int, seed: int, noise: float = 0.1, correlated_noise: float = 0.25) -> Split:
    """`num` labelled signals, classes balanced and shuffled, reproducible from `seed`."""
    if length < 12:
        raise DataError(f"data.length must be at least 12 (the template length), got {length}")
    rng = np.random.default_rng(seed)
    templates = np.stack(list(TEMPLATES.values()))
    labels = rng.permutation(np.arange(num) % len(templates)).astype(np.int32)
    steps = np.arange(length)
    span = rng.uniform(0.5, 1.0, num) * length  # how many steps the template covers
    start = rng.uniform(0.0, 1.0, num) * (length - span)
    position = np.clip((steps[None, :] - start[:, None]) / span[:, None], 0.0, 1.0)  # template coordinate per step
    signals = np.stack([np.interp(p, _T, templates[y]) for p, y in zip(position, labels)])
    signals *= rng.uniform(0.7, 1.3, (num, 1))
    signals += rng.uniform(-0.5, 0.5, (num, 1)) * np.linspace(-1.0, 1.0, length)  # shear
    kernel = np.hanning(7) / np.hanning(7).sum()
    smooth = np.stack([np.convolve(row, kernel, mode="same") for row in rng.normal(size=(num, length))])
    signals += correlated_noise * smooth / smooth.std() + noise * rng.normal(size=(num, length))
    return Split(signals.astype(np.float32)[:, None, :, None], labels)


def load(
    name: str = "signals1d",
    num_train: int = 4000,
    num_test: int = 1000,
    length: int = 40,
    noise: float = 0.1,
    correlated_noise: float = 0.25,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> Dataset:
    """Train and test generated from different seeds; validation carved from train."""
    train = generate(num_train, length, seed, noise, correlated_noise)
    test = generate(num_test, length, seed + 1_000_003, noise, correlated_noise)
    train, val = carve(train, val_fraction, seed)
    return Dataset(name, train, val, test, tuple(TEMPLATES))
