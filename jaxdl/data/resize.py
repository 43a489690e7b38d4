"""Crop, resize and flip of decoded pixels in one call: OpenCV's bilinear warp where it applies, else PIL's resize.

The crop-resize is the largest cost of a decoded image once libjpeg-turbo has decoded it at a reduced scale:
on this 2-core CPU, a random-resized crop of a 256-px packed JPEG to 224 px took 0.49 ms with PIL's
`resize(box=...)` and 0.09 ms with `cv2.warpAffine` (experiments/RESULTS.md, issue 22), the decode itself
0.24 ms. A bilinear warp samples two pixels per axis where PIL's filter widens with the shrink, so the warp
is used for crops shrunk by at most 1.5x per axis: libjpeg-turbo's M/8 scaling puts every training crop of a
pack and 98% of those of 400-600 px photos there (measured), and the decoded crops stay within the tolerance
of tests/test_folder_decoder.py (at 2x the 99th percentile reached it). A crop that shrinks more keeps PIL's
antialiased resize, and so does everything when OpenCV is not installed (the `images` extra) or
`data.decoder=pil` asks for PIL alone.
"""

from __future__ import annotations

import functools
from types import ModuleType

import numpy as np
from PIL import Image

Box = tuple[float, float, float, float]  # (left, top, right, bottom)
MAX_WARP_SHRINK = 1.5  # the bilinear warp's range: crops shrunk by at most this per axis


@functools.cache
def opencv() -> ModuleType | None:
    """cv2, single-threaded (the input workers are the parallelism; its own threads would oversubscribe), or None."""
    try:
        import cv2
    except ImportError:
        return None
    cv2.setNumThreads(1)
    return cv2


def crop_resized(pixels: Image.Image | np.ndarray, box: Box, size: int, flip: bool, warp: bool = True) -> np.ndarray:
    """`box` of `pixels` (L or RGB) resized to (size, size), mirrored left-right if `flip`: a uint8 (H, W) or
    (H, W, 3) array. `warp=False`: PIL only."""
    left, top, right, bottom = box
    sx, sy = size / (right - left), size / (bottom - top)
    cv2 = opencv() if warp and min(sx, sy) >= 1 / MAX_WARP_SHRINK else None
    if cv2 is not None:
        array = np.asarray(pixels)
        # pixel centres: output x + 0.5 = (input x + 0.5 - left) * sx, as PIL's resize maps them
        matrix = np.array([[sx, 0.0, sx * (0.5 - left) - 0.5], [0.0, sy, sy * (0.5 - top) - 0.5]])
        if flip:
            matrix[0] = (-sx, 0.0, size - 1 - matrix[0, 2])
        return cv2.warpAffine(array, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    img = pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels)
    out = img.resize((size, size), Image.Resampling.BILINEAR, box=box)
    if flip:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return np.asarray(out, dtype=np.uint8)
