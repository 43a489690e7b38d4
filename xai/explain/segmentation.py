"""Superpixels for LIME and SHAP: scikit-image segmenters (host side) and a jit-able regular grid.

Every segmentation is an int32 (H, W) map with features numbered 0..F-1, the
layout `lime` uses. For sequences (N, 1, T, C) a grid of (1, w) cells is a set of
contiguous time windows.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
from skimage import segmentation as sk

from xai.explain.inputs import ExplainError

SEGMENTERS = ("auto", "quickshift", "slic", "felzenszwalb", "grid", "windows")
# lime's own quickshift defaults (lime_image.LimeImageExplainer.explain_instance).
DEFAULTS = {
    "quickshift": {"kernel_size": 4, "max_dist": 200, "ratio": 0.2},
    "slic": {"n_segments": 50, "compactness": 10.0, "start_label": 0},
    "felzenszwalb": {"scale": 100, "sigma": 0.5, "min_size": 10},
}


def grid_segments(height: int, width: int, cell: int | tuple[int, int]) -> jnp.ndarray:
    """Rectangular cells of `cell` pixels, numbered row by row (jit-able: shapes are static)."""
    ch, cw = (cell, cell) if isinstance(cell, int) else cell
    rows = jnp.arange(height) // ch
    cols = jnp.arange(width) // cw
    return (rows[:, None] * (-(-width // cw)) + cols[None, :]).astype(jnp.int32)


def segment(image: np.ndarray, method: str = "quickshift", **options: Any) -> np.ndarray:
    """One image's (H, W) segmentation; `image` is float (H, W, C) in [0, 1].

    "auto" is a grid of about 7 x 7 cells for images under 32 pixels, quickshift above, 10 windows for a (1, T) signal.
    """
    image = np.asarray(image, np.float64)
    h, w, c = image.shape
    if method == "auto" and h == 1:  # a (1, T) signal: 10 contiguous time windows
        method, options = "windows", {"window": -(-w // 10)}
    if method == "auto":  # quickshift finds one or two segments in tiny images: use about 7 x 7 cells there
        method, options = ("grid", {"cell": -(-min(h, w) // 7)}) if min(h, w) < 32 else ("quickshift", options)
    if method == "grid":
        return np.asarray(grid_segments(h, w, options.get("cell", 4)))
    if method == "windows":
        return np.asarray(grid_segments(h, w, (h, options.get("window", 8))))
    if method not in DEFAULTS:
        raise ExplainError(f"unknown segmentation '{method}'; valid: {', '.join(SEGMENTERS)}")
    rgb = np.repeat(image, 3, axis=-1) if c == 1 else image
    kwargs = {**DEFAULTS[method], **options}
    if method == "quickshift":
        labels = sk.quickshift(rgb, **kwargs)
    elif method == "slic":
        labels = sk.slic(rgb, channel_axis=-1, **kwargs)
    else:
        labels = sk.felzenszwalb(rgb, channel_axis=-1, **kwargs)
    labels = sk.relabel_sequential(labels)[0]
    return (labels - labels.min()).astype(np.int32)


def segment_batch(images: np.ndarray, method: str = "quickshift", **options: Any) -> np.ndarray:
    """(B, H, W) segmentations of a batch, each numbered from 0."""
    return np.stack([segment(img, method, **options) for img in np.asarray(images)])
