"""8-bit grey and RGB PNGs decoded by OpenCV (libpng without PIL's Python-side work), pixel for pixel as PIL.

A 28-pixel Fashion-MNIST PNG took 0.12 ms in `ImageDecoder` through PIL (opening, reading its EXIF, which for
a PNG loads the pixels first, converting) and its decode alone 0.035 ms, where `cv2.imdecode` takes 0.013
(this 2-core CPU, one thread, experiments/RESULTS.md issue 22, session 9); for images that small PIL's
overhead is most of the cost. PNG is lossless, so the pixels are PIL's exactly; the path only takes what
needs no conversion in which the two could differ: 8-bit grey for a 1-channel model, 8-bit RGB (or grey,
replicated) for a 3-channel one, without transparency (`tRNS`, composed on white by jaxdl) or an EXIF block
(`eXIf`, its orientation applied by PIL). Everything else (palette, 16-bit, alpha, RGB for a grey model,
damaged files) returns None and goes through PIL, which converts or explains.
"""

from __future__ import annotations

import numpy as np

from jaxdl.data.resize import opencv

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
GREY, RGB = 0, 2  # IHDR colour types
TAKEN = {1: (GREY,), 3: (GREY, RGB)}  # colour types each model's channels takes without a lossy conversion


def decode(data: bytes, channels: int) -> np.ndarray | None:
    """(H, W) grey or (H, W, 3) RGB uint8 of a PNG this path takes, else None (PIL's to decode)."""
    if data[:8] != PNG_MAGIC or data[12:16] != b"IHDR" or len(data) < 33:
        return None
    depth, colour = data[24], data[25]
    if depth != 8 or colour not in TAKEN[channels] or b"tRNS" in data or b"eXIf" in data:
        return None
    cv2 = opencv()
    if cv2 is None:
        return None
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if pixels is None or pixels.dtype != np.uint8 or pixels.shape[:2] != (height, width):
        return None
    if channels == 1:
        return pixels
    return cv2.cvtColor(pixels, cv2.COLOR_GRAY2RGB if colour == GREY else cv2.COLOR_BGR2RGB)
