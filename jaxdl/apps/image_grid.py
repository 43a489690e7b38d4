"""Tile a batch of images into one PNG (GAN samples, autoencoder reconstructions)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from skimage import io


def tile(images: np.ndarray, columns: int, pad: int = 1) -> np.ndarray:
    """uint8 NHWC images -> one uint8 (H', W', C) mosaic, row-major, with `pad` pixels of black between."""
    n, h, w, c = images.shape
    rows = -(-n // columns)
    mosaic = np.zeros((rows * (h + pad) + pad, columns * (w + pad) + pad, c), np.uint8)
    for i, image in enumerate(images):
        r, col = divmod(i, columns)
        mosaic[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + col * (w + pad) : pad + col * (w + pad) + w] = image
    return mosaic


MIN_TILE_PIXELS = 64  # tiles of smaller images (8x8 digits, 28x28 Fashion-MNIST) are enlarged to at least this


def save_grid(images: np.ndarray, path: Path, columns: int, scale: int | None = None) -> None:
    """Write `images` (uint8 NHWC) as a PNG grid, each pixel repeated `scale` times (default: tiles of at
    least MIN_TILE_PIXELS)."""
    scale = scale or max(1, MIN_TILE_PIXELS // images.shape[1])
    mosaic = tile(images, columns).repeat(scale, 0).repeat(scale, 1)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    io.imsave(str(path), mosaic[..., 0] if mosaic.shape[-1] == 1 else mosaic, check_contrast=False)


def to_uint8(images) -> np.ndarray:
    """Images in [-1, 1] (generator output) as uint8 pixels."""
    return np.clip(np.round((np.asarray(images, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)
