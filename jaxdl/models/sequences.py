"""Images and signals as sequences, and the masks of variable-length batches."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxdl.models.registry import InputSpec


def sequence_shape(spec: InputSpec) -> tuple[int, int]:
    """(steps, features): an image is read row by row (H steps of W*C); a (1, L, C) signal has L steps of C."""
    h, w = spec.size
    return (w, spec.channels) if h == 1 else (h, w * spec.channels)


def as_sequence(x: jax.Array) -> jax.Array:
    """NHWC batch -> (N, steps, features), as `sequence_shape` describes."""
    n, h, w, c = x.shape
    return x.reshape(n, w, c) if h == 1 else x.reshape(n, h, w * c)


def valid_steps(lengths: jax.Array, steps: int) -> jax.Array:
    """(N, steps) boolean mask of the steps before each sequence's length."""
    return jnp.arange(steps)[None, :] < lengths[:, None]
