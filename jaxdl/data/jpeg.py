"""JPEG decoding through libjpeg-turbo (`simplejpeg`) with DCT-domain downscaling.

libjpeg-turbo scales by M/8 while it decodes (M = 1..8): a 600-pixel photo whose 224-pixel crop only needs
3/8 of its resolution is decoded at 3/8 directly, where PIL's draft mode offers 1/2, 1/4, 1/8 only and
returns through Python-side work. Measured on this 2-core CPU, 300 photos of 400-600 px, one thread
(experiments/RESULTS.md, issue 22): simplejpeg 0.70 ms/image at a 224-pixel target, PyTurboJPEG 0.76, PIL (draft)
1.12. simplejpeg ships libjpeg-turbo 3 inside its wheel; PyTurboJPEG needs a system libturbojpeg (2.x on
Debian 12, so PyTurboJPEG 1.x), which is why simplejpeg is the one used. Files it cannot take (CMYK/YCCK,
12-bit, damaged) return None, and the caller decodes them with PIL, which then reports what is wrong.
"""

from __future__ import annotations

import numpy as np

from jaxdl.errors import ConfigError

try:  # the `fast` extra; without it every JPEG goes through PIL
    import simplejpeg
except ImportError:
    simplejpeg = None

DECODERS = ("auto", "pil", "dali")
JPEG_MAGIC = b"\xff\xd8"
# Colour spaces libjpeg-turbo converts to RGB or grey itself; CMYK and YCCK go through PIL.
FAST_COLOURSPACES = ("Gray", "YCbCr", "RGB")


def jpeg_decoder(choice: str) -> bool:
    """Whether `data.decoder` (auto | pil | dali) takes the host's fast path (JPEGs through libjpeg-turbo, crops
    through OpenCV, `jaxdl.data.resize`) rather than PIL alone."""
    choice = str(choice).lower()
    if choice == "dali":
        from jaxdl.data import dali

        dali.require()
    elif choice not in DECODERS:
        raise ConfigError(f"data.decoder must be auto, pil or dali, got '{choice}'")
    return choice == "auto"


def header(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a JPEG the fast path can decode, else None (not a JPEG, CMYK, unreadable header)."""
    if simplejpeg is None or data[:2] != JPEG_MAGIC:
        return None
    try:
        height, width, colourspace, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError:
        return None
    return (width, height) if colourspace in FAST_COLOURSPACES else None


def decode(data: bytes, channels: int, min_width: int, min_height: int) -> np.ndarray | None:
    """(H, W) grey or (H, W, 3) RGB uint8, decoded at the smallest M/8 scale with at least `min_width` x
    `min_height` pixels; None where libjpeg-turbo reports an error (PIL then decodes or explains)."""
    try:
        pixels = simplejpeg.decode_jpeg(
            data, "GRAY" if channels == 1 else "RGB", min_height=min_height, min_width=min_width, strict=True
        )
    except ValueError:
        return None
    return pixels[..., 0] if channels == 1 else pixels
