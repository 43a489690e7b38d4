"""RandAugment (Cubuk et al. 2019) on uint8-valued images inside the jitted step: `data.augment.randaugment={n, m}`.

Each image draws `n` ops uniformly (with replacement) from the paper's 14 and applies them at magnitude `m`, with
a random sign for the signed ones. `m` is on the paper's 0-10 scale (timm's `_LEVEL_DENOM = 10` too); the op
ranges at m=10 are torchvision's `RandAugment` at its top bin (magnitude 30 of 31): shear 0.3, translate
150/331 of the side, rotate 30 degrees, enhance factors 1 +- 0.9, posterize down to 4 bits, solarize from
threshold 255 down to 0. Every op follows `torchvision.transforms.v2.functional` on a uint8 image: pixel values
stay whole numbers in [0, 255] (blends truncate as it does), geometric ops sample the nearest pixel and fill with
0. A grey (1-channel) image is supported: `color` leaves it unchanged, the others act on its one channel.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from jaxdl.augment_settings import MAX_MAGNITUDE

Op = Callable[[jax.Array, jax.Array], jax.Array]  # (image HWC in 0..255, magnitude with its sign) -> image


def _grid(h: int, w: int) -> tuple[jax.Array, jax.Array]:
    return jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32), indexing="ij")


def _sample(img: jax.Array, rows: jax.Array, cols: jax.Array) -> jax.Array:
    """The pixel nearest each (row, col) source position (round half to even, as grid_sample); 0 outside."""
    h, w = img.shape[:2]
    r, c = jnp.round(rows).astype(jnp.int32), jnp.round(cols).astype(jnp.int32)
    inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
    return jnp.where(inside[..., None], img[jnp.clip(r, 0, h - 1), jnp.clip(c, 0, w - 1)], 0.0)


def shear_x(img: jax.Array, s: jax.Array) -> jax.Array:
    """torchvision's `affine(shear=[atan(s) deg, 0], center=[0, 0])`: column c of row r reads c + s (r + 1/2)."""
    rows, cols = _grid(*img.shape[:2])
    return _sample(img, rows, cols + s * (rows + 0.5))


def shear_y(img: jax.Array, s: jax.Array) -> jax.Array:
    rows, cols = _grid(*img.shape[:2])
    return _sample(img, rows + s * (cols + 0.5), cols)


def translate(img: jax.Array, dy: jax.Array, dx: jax.Array) -> jax.Array:
    """Shift by whole pixels (down by dy, right by dx), 0 where nothing comes in."""
    rows, cols = _grid(*img.shape[:2])
    return _sample(img, rows - dy, cols - dx)


def rotate(img: jax.Array, degrees: jax.Array) -> jax.Array:
    """Counter-clockwise about the image centre, the canvas kept."""
    h, w = img.shape[:2]
    rows, cols = _grid(h, w)
    y, x = rows - (h - 1) / 2, cols - (w - 1) / 2
    cos, sin = jnp.cos(jnp.deg2rad(degrees)), jnp.sin(jnp.deg2rad(degrees))
    return _sample(img, sin * x + cos * y + (h - 1) / 2, cos * x - sin * y + (w - 1) / 2)


def _blend(img: jax.Array, other: jax.Array, factor: jax.Array) -> jax.Array:
    """factor·img + (1-factor)·other, clipped and truncated to whole levels (torchvision's uint8 `_blend`)."""
    return jnp.floor(jnp.clip(img * factor + other * (1.0 - factor), 0.0, 255.0))


def grey(img: jax.Array) -> jax.Array:
    """(H, W, 1) luma, truncated as torchvision's uint8 `rgb_to_grayscale`; a grey image is its own."""
    if img.shape[-1] == 1:
        return img
    return jnp.floor(img[..., :1] * 0.2989 + img[..., 1:2] * 0.587 + img[..., 2:] * 0.114)


def brightness(img: jax.Array, factor: jax.Array) -> jax.Array:
    return _blend(img, jnp.zeros_like(img), factor)


def color(img: jax.Array, factor: jax.Array) -> jax.Array:
    """Saturation: a blend with the grey image (a grey image stays as it is)."""
    return img if img.shape[-1] == 1 else _blend(img, grey(img), factor)


def contrast(img: jax.Array, factor: jax.Array) -> jax.Array:
    return _blend(img, jnp.mean(grey(img)), factor)


def sharpness(img: jax.Array, factor: jax.Array) -> jax.Array:
    """A blend with the image smoothed by [[1,1,1],[1,5,1],[1,1,1]]/13 (rounded), the border pixels kept."""
    h, w = img.shape[:2]
    if h <= 2 or w <= 2:
        return img
    window = sum(img[i : h - 2 + i, j : w - 2 + j] for i in range(3) for j in range(3))
    centre = img[1:-1, 1:-1]
    blurred = jnp.round((window + 4.0 * centre) / 13.0)
    inner = jnp.floor(jnp.clip(centre + (1.0 - factor) * (blurred - centre), 0.0, 255.0))
    return img.at[1:-1, 1:-1].set(inner)


def posterize(img: jax.Array, bits: jax.Array) -> jax.Array:
    """Keep the top `bits` bits of each level."""
    step = 2.0 ** (8 - bits)
    return jnp.floor(img / step) * step


def solarize(img: jax.Array, threshold: jax.Array) -> jax.Array:
    return jnp.where(img >= threshold, 255.0 - img, img)


def autocontrast(img: jax.Array) -> jax.Array:
    """Stretch each channel to [0, 255] (a flat channel is left as it is)."""
    lo, hi = img.min(axis=(0, 1)), img.max(axis=(0, 1))
    flat = hi == lo
    inv_scale = jnp.where(flat, 1.0, (hi - lo) * (1.0 / 255.0))  # torchvision's float order, for its truncation
    return jnp.floor(jnp.clip((img - jnp.where(flat, 0.0, lo)) / inv_scale, 0.0, 255.0))


def _equalize_channel(channel: jax.Array) -> jax.Array:
    """PIL's `ImageOps.equalize` lookup table: step = (pixels - count of the top level) // 255."""
    levels = channel.astype(jnp.int32).ravel()
    hist = jnp.zeros(256, jnp.int32).at[levels].add(1)
    step = (levels.size - hist[levels.max()]) // 255
    lut = jnp.clip((step // 2 + jnp.cumsum(hist) - hist) // jnp.maximum(step, 1), 0, 255)
    return jnp.where(step > 0, lut[levels].reshape(channel.shape).astype(channel.dtype), channel)


def equalize(img: jax.Array) -> jax.Array:
    return jax.vmap(_equalize_channel, in_axes=-1, out_axes=-1)(img)


def _translate_pixels(side: int, m: jax.Array) -> jax.Array:
    """torchvision's bin value 150/331 of the side, truncated toward zero after its sign."""
    return jnp.trunc(m / MAX_MAGNITUDE * 150.0 / 331.0 * side)


def ops(h: int, w: int) -> dict[str, Op]:
    """The paper's op list, each a function of (image, signed magnitude m) at image size (h, w)."""
    frac = lambda m, top: m / MAX_MAGNITUDE * top  # noqa: E731
    return {
        "identity": lambda img, m: img,
        "autocontrast": lambda img, m: autocontrast(img),
        "equalize": lambda img, m: equalize(img),
        "rotate": lambda img, m: rotate(img, frac(m, 30.0)),
        "solarize": lambda img, m: solarize(img, 255.0 - frac(jnp.abs(m), 255.0)),
        "color": lambda img, m: color(img, 1.0 + frac(m, 0.9)),
        "posterize": lambda img, m: posterize(img, 8 - jnp.round(frac(jnp.abs(m), 4.0))),
        "contrast": lambda img, m: contrast(img, 1.0 + frac(m, 0.9)),
        "brightness": lambda img, m: brightness(img, 1.0 + frac(m, 0.9)),
        "sharpness": lambda img, m: sharpness(img, 1.0 + frac(m, 0.9)),
        "shear_x": lambda img, m: shear_x(img, frac(m, 0.3)),
        "shear_y": lambda img, m: shear_y(img, frac(m, 0.3)),
        "translate_x": lambda img, m: translate(img, 0.0, _translate_pixels(w, m)),
        "translate_y": lambda img, m: translate(img, _translate_pixels(h, m), 0.0),
    }


SIGNED = ("rotate", "color", "contrast", "brightness", "sharpness", "shear_x", "shear_y", "translate_x", "translate_y")


def rand_augment(key: jax.Array, img: jax.Array, n: int, m: float) -> tuple[jax.Array, jax.Array, jax.Array]:
    """`n` random ops on one image of whole levels in [0, 255]; also the ops' indices (into `ops`) and signed
    magnitudes, in the order applied."""
    table = ops(*img.shape[:2])
    branches = list(table.values())
    signed = jnp.array([name in SIGNED for name in table])
    pick_key, sign_key = jax.random.split(key)
    chosen = jax.random.randint(pick_key, (n,), 0, len(branches))
    magnitudes = jnp.where(signed[chosen] & jax.random.bernoulli(sign_key, 0.5, (n,)), -m, m).astype(jnp.float32)
    apply = lambda i, x: jax.lax.switch(chosen[i], branches, x, magnitudes[i])  # noqa: E731  (compiled once, not n times)
    return jax.lax.fori_loop(0, n, apply, img), chosen, magnitudes
