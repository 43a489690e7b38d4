"""Models with random weights drawn by NumPy, for tests whose claim holds for any weights (export agreement,
deterministic evaluation).

Flax initialises eagerly, and on a CPU every initialiser compiles an XLA program per layer shape: 118 for a
GoogLeNet, most of a minute under the test suite's load. One NumPy draw per array costs nothing.
"""

from __future__ import annotations

from typing import Callable

import jax
import numpy as np
from flax import nnx

from jaxdl.models.registry import unfilled


def _leaf_name(path: tuple) -> str:
    return str(next(k.key for k in reversed(path) if isinstance(k, jax.tree_util.DictKey)))


def with_random_weights(make: Callable[[], nnx.Module], seed: int = 0) -> nnx.Module:
    """`make()`'s module with every parameter and batch statistic drawn from `seed`: kernels and embeddings
    N(0, 1/fan-in), biases and means N(0, 0.1²), scales and variances 1 + |N(0, 0.1²)| (so every layer keeps
    its activations in range)."""
    model = unfilled(make, seed)
    _, weights, _ = nnx.split(model, (nnx.Param, nnx.BatchStat), ...)
    rng = np.random.default_rng(seed)

    def draw(path: tuple, leaf: jax.ShapeDtypeStruct) -> np.ndarray:
        name, shape = _leaf_name(path), leaf.shape
        if name in ("bias", "mean"):
            value = 0.1 * rng.standard_normal(shape)
        elif name in ("scale", "var"):
            value = 1 + 0.1 * np.abs(rng.standard_normal(shape))
        else:
            value = rng.standard_normal(shape) / np.sqrt(max(int(np.prod(shape[:-1])), 1))
        return value.astype(leaf.dtype)

    nnx.update(model, jax.tree_util.tree_map_with_path(draw, weights))
    return model
