"""Image files of any size and mode brought to a model's input: uint8 (H, W, C) at `Preprocess.size`.

Resizing happens here on the host, once per photo, with PIL, as torchvision's evaluation
transforms do it (so an imported network sees the pixels it saw in PyTorch); the jitted
preprocessing then only normalises a batch of one shape.
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Sequence

import numpy as np

from jaxdl.data.pipeline import Preprocess, center_crop_offsets, shorter_side_size
from jaxdl.errors import DataError

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def find_images(where: str | Sequence[str]) -> list[Path]:
    """The image files of a folder (sorted, recursively), a glob pattern, a file, or a list of those."""
    if not isinstance(where, (str, Path)):
        return [path for item in where for path in find_images(item)]
    path = Path(where).expanduser()
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.suffix.lower() in EXTENSIONS)
    elif path.is_file():
        found = [path]
    else:
        found = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
    if not found:
        raise DataError(f"no image files ({', '.join(EXTENSIONS)}) at '{where}'; pass a folder, a file or a glob pattern")
    return found


def fit_photo(image, preprocess: Preprocess, channels: int) -> np.ndarray:
    """A PIL image as uint8 (H, W, channels) at the model's size: shorter side + centre crop, or a plain resize."""
    from PIL import Image

    image = image.convert("L" if channels == 1 else "RGB")
    th, tw = preprocess.size
    resample = {"bicubic": Image.BICUBIC, "nearest": Image.NEAREST}.get(preprocess.interpolation, Image.BILINEAR)
    if preprocess.resize == "center_crop":
        h, w = shorter_side_size((image.height, image.width), preprocess.resize_shorter or min(th, tw))
        image = image.resize((w, h), resample)
        top, left = center_crop_offsets((h, w), (th, tw))
        image = image.crop((left, top, left + tw, top + th))
    elif image.size != (tw, th):
        image = image.resize((tw, th), resample)
    pixels = np.asarray(image, dtype=np.uint8)
    return pixels[..., None] if pixels.ndim == 2 else pixels


def read_photos(paths: Sequence[Path], preprocess: Preprocess, channels: int) -> np.ndarray:
    """(N, H, W, C) uint8 of the image files at `paths`, each fitted to the model's input."""
    return read_readable_photos(paths, preprocess, channels, skip_bad=False)[0]


def read_readable_photos(
    paths: Sequence[Path], preprocess: Preprocess, channels: int, skip_bad: bool = True
) -> tuple[np.ndarray, list[Path], list[tuple[Path, str]]]:
    """The readable files of `paths` as `read_photos` gives them, the paths they came from, and (path, reason)
    of each unreadable one (truncated, not an image, a decompression bomb): skipped, or with
    `skip_bad=False` a `DataError`."""
    from PIL import Image

    from jaxdl.data.images import DECODE_ERRORS

    fitted, read, bad = [], [], []
    for path in paths:
        try:
            with Image.open(path) as image:
                fitted.append(fit_photo(image, preprocess, channels))
            read.append(path)
        except DECODE_ERRORS as err:  # the ones training skips too
            reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            if not skip_bad:
                raise DataError(f"cannot read image {path} ({reason})") from err
            bad.append((path, reason))
    th, tw = preprocess.size
    return np.stack(fitted) if fitted else np.zeros((0, th, tw, channels), np.uint8), read, bad
