"""The OpenCV path for 8-bit grey and RGB PNGs (`jaxdl.data.png`): PIL's pixels exactly, everything else left to PIL."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from jaxdl.data import png
from jaxdl.data.images import ImageDecoder
from tests.image_files import jpeg_bytes, photo

pytest.importorskip("cv2")


def _png(image: Image.Image, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **kwargs)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def images() -> dict[str, Image.Image]:
    grey = Image.fromarray(photo("camera")).resize((60, 44))
    return {"tiny grey": grey.resize((28, 28)), "grey": grey, "rgb": Image.fromarray(photo("astronaut")).resize((50, 70))}


def test_grey_and_rgb_pngs_decode_to_pils_pixels_exactly(images):
    for name, image in images.items():
        data = _png(image)
        for channels in (1, 3) if image.mode == "L" else (3,):
            expected = np.asarray(image.convert("L" if channels == 1 else "RGB"))
            got = png.decode(data, channels)
            assert got is not None and got.dtype == np.uint8, (name, channels)
            np.testing.assert_array_equal(got, expected)


def test_what_needs_a_conversion_or_is_not_a_plain_png_goes_to_pil(images):
    rgb, grey = images["rgb"], images["grey"]
    exif = Image.Exif()
    exif[0x0112] = 6
    others = {
        "RGB for a grey model": (_png(rgb), 1),
        "palette": (_png(rgb.convert("P")), 3),
        "RGBA": (_png(rgb.convert("RGBA")), 3),
        "transparency": (_png(grey, transparency=0), 1),
        "16-bit": (_png(Image.fromarray(np.asarray(grey).astype(np.uint16) * 257)), 1),
        "EXIF orientation": (_png(grey, exif=exif.tobytes()), 1),
        "JPEG": (jpeg_bytes(np.asarray(rgb)), 3),
        "truncated": (_png(grey)[:120], 1),
    }
    for name, (data, channels) in others.items():
        assert png.decode(data, channels) is None, name


def test_the_decoder_gives_the_same_crops_with_and_without_the_png_path(images, monkeypatch):
    cases = [(_png(image), channels) for image in images.values() for channels in ((1, 3) if image.mode == "L" else (3,))]
    decoders = {channels: ImageDecoder(24, channels) for channels in (1, 3)}
    rngs = lambda: [None, *(np.random.default_rng([0, 1, k]) for k in range(4))]
    fast = [[decoders[c]._decode(data, rng) for rng in rngs()] for data, c in cases]
    monkeypatch.setattr(png, "decode", lambda data, channels: None)
    for (data, c), crops in zip(cases, fast, strict=True):
        for crop, rng in zip(crops, rngs(), strict=True):
            np.testing.assert_array_equal(crop, decoders[c]._decode(data, rng))
