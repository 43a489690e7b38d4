"""Checks on what users pass to the explainers: one clear line instead of a deep traceback."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.errors import JaxdlError


class ExplainError(JaxdlError):
    """An explanation request that cannot work: bad images, layer, target or option."""


def check_images(images: Any) -> jax.Array:
    """A float32 NHWC batch in the explainers' units: uint8 pixels (0-255) become [0, 1]; floats pass through
    unchanged, so float images must already be in [0, 1] (signals: the data set's own units), as the model's
    preprocessing divides only uint8 input by 255."""
    dtype = np.dtype(getattr(images, "dtype", np.asarray(images).dtype))
    if np.ndim(images) != 4:
        raise ExplainError(
            f"images must be a batch in NHWC layout (4 dimensions), got shape {tuple(np.shape(images))}; add a batch axis with images[None]"
        )
    if not np.shape(images)[0]:
        raise ExplainError("there are no images to explain (an empty batch); pass at least one")
    if dtype == np.uint8:
        return jnp.asarray(images, jnp.float32) / 255.0
    if not np.issubdtype(dtype, np.floating):
        raise ExplainError(f"images must be uint8 pixels or floats, got dtype {dtype}")
    images = jnp.asarray(images, jnp.float32)
    if not bool(jnp.isfinite(images).all()):
        raise ExplainError(
            f"images contain NaN or infinite values (in {int((~jnp.isfinite(images)).any(axis=(1, 2, 3)).sum())} of {len(images)} images)"
        )
    return images


def check_targets(targets: Any, count: int, num_classes: int) -> jax.Array:
    """Int32 target classes, one per image (a single int is broadcast; None means the predicted class, -1)."""
    targets = np.asarray(-1 if targets is None else targets)
    if not np.issubdtype(targets.dtype, np.integer):
        raise ExplainError(f"targets must be integer class indices, got dtype {targets.dtype}")
    targets = np.broadcast_to(targets, (count,)) if targets.ndim == 0 else targets
    if targets.shape != (count,):
        raise ExplainError(f"need one target per image: {count} images but targets of shape {targets.shape}")
    bad = targets[(targets < -1) | (targets >= num_classes)]
    if bad.size:
        raise ExplainError(
            f"target class {int(bad[0])} is out of range; the model has {num_classes} classes (0..{num_classes - 1})"
        )
    return jnp.asarray(targets, jnp.int32)
