"""Decode one image file into a uint8 (size, size, channels) array, the way training and evaluation want it.

Evaluation: the largest centred square (times `eval_crop`) resized to `size`, i.e. resize of the
shorter side plus a centre crop. Training: a random-resized crop (area `crop_scale`, aspect
`crop_ratio`, as torchvision's RandomResizedCrop) plus a horizontal flip, drawn from a seed so a
resumed run draws the same crops. Crop, resize and flip are one call (`resize`: OpenCV's warp, or PIL).
The crop is drawn from the file header's size before decoding, so a JPEG is decoded at the smallest scale
that still leaves `size` pixels across the crop (libjpeg-turbo's M/8 through `jpeg`, else PIL's draft
mode): a 12000x9000 photo is never decoded at full size for a 224-pixel target, and a large training crop
of a 600-pixel one neither.
"""

from __future__ import annotations

import dataclasses
import io
import math
import threading
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from jaxdl.data import jpeg, png
from jaxdl.data.auto_size import IMAGENET_CROP_SCALE
from jaxdl.data.resize import Box, crop_resized
from jaxdl.errors import ConfigError, DataError

BAD_FILE_POLICIES = ("skip", "raise")
EXIF_ORIENTATION = 0x0112
ROTATED_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that swap width and height
# What PIL's `ImageOps.exif_transpose` does for each EXIF orientation, for pixels decoded without PIL.
EXIF_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
SINGLE_BAND_MODES = ("1", "L", "P;L", "I", "I;16", "I;16B", "I;16L", "I;16N")


class BadImage(Exception):
    """A file that decodes but cannot become the model's input (e.g. a float image)."""


# Every decoding failure PIL reports for a file that is not a readable image.
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError, BadImage)


class BadFiles:
    """The unreadable files met so far (thread-safe: decoding runs in Grain's threads)."""

    def __init__(self):
        self._reasons: dict[str, str] = {}
        self._lock = threading.Lock()

    def record(self, path: str, reason: str) -> None:
        with self._lock:
            self._reasons.setdefault(path, reason)

    def __len__(self) -> int:
        return len(self._reasons)

    def __getstate__(self) -> dict:  # a worker process gets an empty record: it hands reasons back with its data
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()

    def lines(self) -> list[str]:
        with self._lock:
            return [f"{path}\t{reason}" for path, reason in sorted(self._reasons.items())]

    def text(self) -> str:
        """One `file<TAB>reason` line per bad file."""
        return "".join(line + "\n" for line in self.lines())

    def write(self, path: Path) -> None:
        Path(path).write_text(self.text())

    @classmethod
    def from_lines(cls, lines: Iterable[str]) -> BadFiles:
        """The bad files of `text()` lines (e.g. those of several processes together; a file listed twice is one)."""
        found = cls()
        for line in lines:
            path, _, reason = line.partition("\t")
            found.record(path, reason)
        return found


def _orientation(data: bytes) -> int:
    """The EXIF orientation (1-8) of an encoded image; 1 when it has no EXIF block (the common, cheap case)."""
    if data.find(b"Exif\x00\x00", 0, 65536) < 0:  # searched in place: no copy of the file's head
        return 1
    with Image.open(io.BytesIO(data)) as img:
        return int(img.getexif().get(EXIF_ORIENTATION, 1))


def _read(path: str) -> bytes:
    """The file's bytes (`open` directly: `Path.read_bytes` cost twice as much, 17 vs 9 us per small file)."""
    with open(path, "rb") as f:
        return f.read()


def _to_channels(img: Image.Image, channels: int) -> Image.Image:
    """Grey, palette, RGBA (on white), CMYK and 16-bit images as L or RGB."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        array = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if img.mode.startswith("I;16") or array.max(initial=0) > 255 else 255.0
        img = Image.fromarray(np.clip(array * (255.0 / peak), 0, 255).astype(np.uint8), "L")
    elif img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = img.convert("RGBA")
        img = Image.new("RGB", rgba.size, (255, 255, 255))
        img.paste(rgba, mask=rgba.getchannel("A"))
    if img.mode not in ("1", "L", "P", "RGB", "CMYK", "YCbCr", "LAB", "HSV"):
        raise BadImage(f"unsupported image mode {img.mode}")
    mode = "L" if channels == 1 else "RGB"
    return img if img.mode == mode else img.convert(mode)


def _random_resized_crop(
    width: int, height: int, rng: np.random.Generator, scale: Sequence[float], ratio: Sequence[float]
) -> Box:
    """torchvision's RandomResizedCrop box: 10 tries at a random area and aspect, else the centre crop."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            left, top = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
            return left, top, left + w, top + h
    aspect = width / height
    w, h = (
        (width, round(width / ratio[0]))
        if aspect < ratio[0]
        else ((round(height * ratio[1]), height) if aspect > ratio[1] else (width, height))
    )
    left, top = (width - w) // 2, (height - h) // 2
    return left, top, left + w, top + h


def _centre_square(width: int, height: int, fraction: float) -> Box:
    side = min(width, height) * fraction
    left, top = (width - side) / 2, (height - side) / 2
    return left, top, left + side, top + side


@dataclasses.dataclass(frozen=True)
class ImageDecoder:
    """Turns a path into the model's uint8 input; bad files are recorded (`skip`) or raised (`raise`)."""

    size: int
    channels: int
    eval_crop: float = 1.0
    crop_scale: tuple[float, float] | None = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: bool = True
    on_bad_file: str = "skip"
    fast: bool = True  # JPEGs through libjpeg-turbo (`jpeg`), crops through OpenCV (`resize`) where installed; False: PIL only
    bad_files: BadFiles = dataclasses.field(default_factory=BadFiles, compare=False)

    def __post_init__(self):
        if self.on_bad_file not in BAD_FILE_POLICIES:
            raise ConfigError(f"data.on_bad_file must be skip or raise, got '{self.on_bad_file}'")
        if self.channels not in (1, 3):
            raise ConfigError(f"data.channels must be 1, 3 or auto, got {self.channels}")
        if not 0.0 < self.eval_crop <= 1.0:
            raise ConfigError(f"data.eval_crop must be in (0, 1], got {self.eval_crop}")

    def _open(self, source: str | bytes | np.ndarray, crop: Callable[[int, int], Box]) -> tuple[Image.Image | np.ndarray, Box]:
        """The image in the model's channels, EXIF-oriented, and the `crop` box drawn on its full size, scaled to
        the decoded pixels: a JPEG is decoded at the smallest scale that keeps `size` pixels across the box (the
        box is drawn from the header's size, before decoding): libjpeg-turbo's M/8 scales through `jpeg`, or
        PIL's draft mode (1/2, 1/4, 1/8) for files that path cannot take."""
        if isinstance(source, np.ndarray):  # raw pixels (a packed store's `raw` format)
            pixels = source[..., 0] if source.shape[-1] == 1 else source
            if source.shape[-1] != self.channels:
                pixels = np.asarray(_to_channels(Image.fromarray(pixels), self.channels))
            return pixels, crop(pixels.shape[1], pixels.shape[0])
        data = source if isinstance(source, bytes) else _read(source)
        size = jpeg.header(data) if self.fast else None
        if size is not None:
            opened = self._open_fast(data, size, crop)
            if opened is not None:
                return opened
        pixels = png.decode(data, self.channels) if self.fast else None
        if pixels is not None:
            return pixels, crop(pixels.shape[1], pixels.shape[0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            rotated = img.getexif().get(EXIF_ORIENTATION, 1) in ROTATED_ORIENTATIONS
            left, top, right, bottom = crop(*((height, width) if rotated else (width, height)))
            if img.format == "JPEG":
                img.draft("L" if self.channels == 1 else "RGB", self._scaled(width, height, (left, top, right, bottom)))
            img.load()
        sx, sy = img.width / width, img.height / height
        if rotated:
            sx, sy = sy, sx
        ImageOps.exif_transpose(img, in_place=True)
        return _to_channels(img, self.channels), (left * sx, top * sy, right * sx, bottom * sy)

    def _scaled(self, width: int, height: int, box: Box) -> tuple[int, int]:
        """The fewest pixels (width, height) to decode that still leave `size` pixels across `box`."""
        keep = min(1.0, self.size / min(box[2] - box[0], box[3] - box[1]))
        return math.ceil(width * keep), math.ceil(height * keep)

    def _open_fast(self, data: bytes, size: tuple[int, int], crop: Callable[[int, int], Box]) -> tuple[np.ndarray, Box] | None:
        """`_open` through libjpeg-turbo (a JPEG in grey, YCbCr or RGB), as an array; None where it reports an error."""
        width, height = size
        orientation = _orientation(data)
        rotated = orientation in ROTATED_ORIENTATIONS
        left, top, right, bottom = crop(*((height, width) if rotated else (width, height)))
        pixels = jpeg.decode(data, self.channels, *self._scaled(width, height, (left, top, right, bottom)))
        if pixels is None:
            return None
        sx, sy = pixels.shape[1] / width, pixels.shape[0] / height
        if rotated:
            sx, sy = sy, sx
        if orientation in EXIF_TRANSPOSE:
            pixels = np.asarray(Image.fromarray(pixels).transpose(EXIF_TRANSPOSE[orientation]))
        return pixels, (left * sx, top * sy, right * sx, bottom * sy)

    def _decode(self, source: str | bytes | np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        if rng is not None and self.crop_scale is not None:
            crop = lambda w, h: _random_resized_crop(w, h, rng, self.crop_scale, self.crop_ratio)
        else:
            crop = lambda w, h: _centre_square(w, h, self.eval_crop)
        pixels, box = self._open(source, crop)
        flip = rng is not None and self.hflip and rng.random() < 0.5
        return crop_resized(pixels, box, self.size, flip, self.fast).reshape(self.size, self.size, self.channels)

    def try_decode(
        self, source: str | bytes | np.ndarray, rng: np.random.Generator | None = None
    ) -> tuple[np.ndarray | None, str]:
        """(the image, "") or (None, why it cannot be read) under `skip`; a `DataError` under `raise`.

        What worker processes call: they hand the reason back instead of recording it here."""
        try:
            return self._decode(source, rng), ""
        except DECODE_ERRORS as err:
            reason = f"{type(err).__name__}: {err}".replace("\n", " ")
            if self.on_bad_file == "raise":
                name = source if isinstance(source, str) else "(packed record)"
                raise DataError(f"cannot read image {name} ({reason}); data.on_bad_file=skip skips such files") from None
            return None, reason

    def __call__(self, path: str, rng: np.random.Generator | None = None) -> np.ndarray | None:
        """The image at `path` (training transform when `rng` is given), or None for a bad file under `skip`."""
        image, reason = self.try_decode(path, rng)
        if image is None:
            self.bad_files.record(path, reason)
        return image


def configured_decoder(
    size: int, channels: int, eval_crop: float, augment: Mapping, on_bad_file: str, decoder: str
) -> ImageDecoder:
    """The `ImageDecoder` of a data config (`data=folder`, `data=packed`): `augment`'s crop and flip settings
    (auto already resolved; a missing crop scale is ImageNet's), `decoder` auto | pil | dali."""
    scale = augment.get("crop_scale", IMAGENET_CROP_SCALE)
    return ImageDecoder(
        size=int(size),
        channels=int(channels),
        eval_crop=float(eval_crop),
        crop_scale=tuple(scale) if scale else None,
        crop_ratio=tuple(augment.get("crop_ratio", (3 / 4, 4 / 3))),
        hflip=bool(augment.get("hflip", True)),
        on_bad_file=on_bad_file,
        fast=jpeg.jpeg_decoder(decoder),
    )


def detect_channels(paths: Sequence[str], probe: int = 32) -> int:
    """1 when the first `probe` readable images are all single-band (grey), else 3."""
    for path in paths[:probe]:
        try:
            with Image.open(path) as img:
                if img.mode not in SINGLE_BAND_MODES and not (img.mode == "P" and _grey_palette(img)):
                    return 3
        except DECODE_ERRORS:
            continue
    return 1


def _grey_palette(img: Image.Image) -> bool:
    palette = np.asarray(img.getpalette() or [], dtype=np.int32).reshape(-1, 3)
    return bool(len(palette)) and bool((palette == palette[:, :1]).all())
