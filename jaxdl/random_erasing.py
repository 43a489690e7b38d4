"""Random erasing (Zhong et al. 2017), timm's `RandomErasing` semantics, on one normalised image in the jitted step.

With probability `p` a box is erased: up to 10 tries draw an area fraction uniformly from `area` and an aspect
ratio log-uniformly from `aspect`; the box is h = round(sqrt(A·r)) by w = round(sqrt(A/r)) pixels, and the first
try that fits strictly inside the image (h < H, w < W) is placed uniformly. Its pixels become N(0, 1) noise per
pixel and channel (timm's `mode='pixel'`, in normalised units) or 0 (the mean colour). No try fits: nothing erased.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

TRIES = 10


def erase(
    key: jax.Array,
    img: jax.Array,
    p: float,
    area: tuple[float, float],
    aspect: tuple[float, float],
    value: str = "random",
) -> jax.Array:
    """`img` (H, W, C) with one box erased with probability `p`."""
    h, w = img.shape[:2]
    u = jax.random.uniform(key, (2 * TRIES + 3,))  # one draw for every choice: cheaper to compile than six
    target = (area[0] + (area[1] - area[0]) * u[:TRIES]) * h * w
    log_lo, log_hi = jnp.log(aspect[0]), jnp.log(aspect[1])
    ratio = jnp.exp(log_lo + (log_hi - log_lo) * u[TRIES : 2 * TRIES])
    hs = jnp.round(jnp.sqrt(target * ratio)).astype(jnp.int32)
    ws = jnp.round(jnp.sqrt(target / ratio)).astype(jnp.int32)
    fits = (hs < h) & (ws < w)
    first = jnp.argmax(fits)
    bh, bw = hs[first], ws[first]
    top = jnp.minimum(jnp.floor(u[-2] * (h - bh + 1)).astype(jnp.int32), h - bh)  # uniform on 0 .. h - bh
    left = jnp.minimum(jnp.floor(u[-1] * (w - bw + 1)).astype(jnp.int32), w - bw)
    rows, cols = jnp.arange(h)[:, None], jnp.arange(w)[None, :]
    box = (rows >= top) & (rows < top + bh) & (cols >= left) & (cols < left + bw)
    erased = (u[2 * TRIES] < p) & fits.any() & box
    fill = jax.random.normal(jax.random.fold_in(key, 1), img.shape, img.dtype) if value == "random" else 0.0
    return jnp.where(erased[..., None], fill, img)
