"""Image folder trees for the folder tests: scikit-image's photographs in mixed formats, plus broken files."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

COLOUR = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina", "colorwheel", "logo")
GREY = ("camera", "coins", "moon", "page", "text", "clock", "brick", "grass", "gravel", "cell", "checkerboard")
FORMATS = ("jpg", "png", "bmp", "gif", "webp", "tiff")
PIL_FORMATS = {"jpg": "JPEG", "png": "PNG", "bmp": "BMP", "gif": "GIF", "webp": "WEBP", "tiff": "TIFF"}
ORIENTATION = 0x0112


def photo(name: str) -> np.ndarray:
    import skimage.data

    return getattr(skimage.data, name)()


def save(array: np.ndarray, path: Path, fmt: str | None = None, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, PIL_FORMATS[fmt or path.suffix[1:]], **kwargs)
    return path


def jpeg_bytes(array: np.ndarray, **kwargs) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "JPEG", **kwargs)
    return buffer.getvalue()


def write_photo_tree(root: Path) -> list[Path]:
    """root/colour and root/grey: every photograph twice (two crops), cycling through the formats,
    plus the awkward modes: CMYK JPEG, 16-bit PNG, palette PNG, RGBA PNG, EXIF-rotated JPEG."""
    written = []
    for cls, names in (("colour", COLOUR), ("grey", GREY)):
        for k, name in enumerate(names):
            image = photo(name)
            for copy in range(2):
                h, w = image.shape[:2]
                crop = image[copy * h // 8 :, : w - copy * w // 8]
                fmt = FORMATS[(2 * k + copy) % len(FORMATS)]
                if crop.ndim == 3 and crop.shape[-1] == 4 and fmt in ("jpg", "bmp", "gif"):
                    fmt = "png"
                written.append(save(np.ascontiguousarray(crop), root / cls / f"{name}_{copy}.{fmt}"))
    coffee, camera = photo("coffee"), photo("camera")
    cmyk = root / "colour" / "coffee_cmyk.jpg"
    Image.fromarray(coffee).convert("CMYK").save(cmyk, "JPEG")
    deep = root / "grey" / "camera_16bit.png"
    Image.fromarray(camera.astype(np.uint16) * 257).save(deep)
    palette = root / "colour" / "chelsea_palette.png"
    Image.fromarray(photo("chelsea")).convert("P", palette=Image.Palette.ADAPTIVE).save(palette)
    rotated = root / "colour" / "rocket_exif.jpg"
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    Image.fromarray(photo("rocket")).save(rotated, "JPEG", exif=exif)
    return written + [cmyk, deep, palette, rotated]


def write_corrupt_files(folder: Path) -> list[Path]:
    """A truncated JPEG, a zero-byte PNG, a text file named .jpg and a float TIFF (a mode no model reads)."""
    folder.mkdir(parents=True, exist_ok=True)
    whole = jpeg_bytes(photo("astronaut"))
    truncated, empty, text, floats = (folder / n for n in ("truncated.jpg", "empty.png", "notes.jpg", "floats.tif"))
    truncated.write_bytes(whole[: len(whole) // 2])
    empty.write_bytes(b"")
    text.write_text("this is not an image\n")
    Image.fromarray(np.random.default_rng(0).random((32, 32), dtype=np.float32), "F").save(floats)
    return [truncated, empty, text, floats]
