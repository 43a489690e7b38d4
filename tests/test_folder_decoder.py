"""The libjpeg-turbo decoder (`jaxdl.data.jpeg`): the same crops as PIL's decoder within a stated tolerance.

Tolerance, on scikit-image's photographs saved as JPEG (quality 90): per image, the mean absolute difference
from PIL's decoder is at most 3.5 grey levels of 255 and the 99th percentile at most 20. The two decode at
different DCT scales (libjpeg-turbo's M/8 vs PIL's 1/2^k), so their anti-aliasing differs a little;
the crop, orientation, channels and flip are the same.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from jaxdl.data import jpeg
from jaxdl.data.images import ImageDecoder
from jaxdl.data.resize import crop_resized, opencv
from tests.image_files import ORIENTATION, jpeg_bytes, photo

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "immunohistochemistry")
MEAN_TOLERANCE, P99_TOLERANCE = 3.5, 20


def _close(fast: np.ndarray, pil: np.ndarray) -> None:
    assert fast.shape == pil.shape and fast.dtype == pil.dtype == np.uint8
    diff = np.abs(fast.astype(np.int32) - pil)
    assert diff.mean() <= MEAN_TOLERANCE and np.percentile(diff, 99) <= P99_TOLERANCE, (diff.mean(), np.percentile(diff, 99))


@pytest.mark.parametrize("channels", [3, 1])
def test_fast_decoder_crops_equal_pils_on_photos(channels):
    fast, pil = ImageDecoder(96, channels), ImageDecoder(96, channels, fast=False)
    for name in PHOTOS:
        data = jpeg_bytes(photo(name), quality=90)
        assert jpeg.header(data) is not None  # the fast path takes these files
        for seed in (None, 1, 2, 3):
            rng = lambda: None if seed is None else np.random.default_rng(seed)
            _close(fast._decode(data, rng()), pil._decode(data, rng()))
        unrelated = pil._decode(jpeg_bytes(photo("coffee" if name != "coffee" else "rocket")), None)
        assert np.abs(fast._decode(data, None).astype(np.int32) - unrelated).mean() > 20  # the test can tell photos apart


def test_libjpeg_turbo_decodes_at_the_smallest_m_over_8_scale():
    data = jpeg_bytes(photo("astronaut"))  # 512 x 512
    assert jpeg.decode(data, 3, 100, 100).shape == (128, 128, 3)  # 2/8: the smallest M/8 with >= 100 px
    assert jpeg.decode(data, 1, 150, 150).shape == (192, 192)  # 3/8 (PIL's draft would decode 256)
    assert jpeg.decode(data[: len(data) // 2], 3, 100, 100) is None  # truncated: left to PIL, which reports it
    decoder = ImageDecoder(224, 3)
    image, box = decoder._open(data, lambda w, h: (0, 0, 300, 300))  # 224 of 300 px: 6/8 of the photo
    assert image.shape == (384, 384, 3) and box == (0.0, 0.0, 225.0, 225.0)


def test_exif_orientation_grey_and_cmyk_on_the_fast_path():
    rocket = photo("rocket")
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    fast, pil = ImageDecoder(64, 3), ImageDecoder(64, 3, fast=False)
    rotated = jpeg_bytes(rocket, exif=exif.tobytes())
    upright = fast._decode(rotated, None)
    _close(upright, pil._decode(rotated, None))
    _close(upright, pil._decode(jpeg_bytes(np.ascontiguousarray(np.rot90(rocket, -1))), None))
    assert np.abs(upright.astype(np.int32) - pil._decode(jpeg_bytes(rocket), None)).mean() > 20
    for orientation in (2, 3, 8):
        exif[ORIENTATION] = orientation
        data = jpeg_bytes(rocket, exif=exif.tobytes())
        _close(fast._decode(data, np.random.default_rng(0)), pil._decode(data, np.random.default_rng(0)))
    grey = jpeg_bytes(photo("camera"))
    _close(fast._decode(grey, None), pil._decode(grey, None))  # grey JPEG to RGB
    cmyk = Image.fromarray(photo("coffee")).convert("CMYK")
    buffer = io.BytesIO()
    cmyk.save(buffer, "JPEG")
    assert jpeg.header(buffer.getvalue()) is None  # CMYK goes through PIL, as before
    _close(fast._decode(buffer.getvalue(), None), pil._decode(buffer.getvalue(), None))  # resized by OpenCV


def test_opencv_warp_is_pils_resize_up_to_rounding_and_close_where_it_shrinks():
    pytest.importorskip("cv2")
    assert opencv() is not None
    for image in (photo("astronaut"), photo("camera")):  # RGB and grey
        for box, (mean, p99, most) in (
            ((10.5, 20.25, 110.5, 150.0), (0.3, 1, 1)),  # enlarged: the same bilinear filter, rounding apart
            ((37.2, 11.9, 237.2, 211.9), (0.3, 1, 1)),
            ((0, 0, 300, 300), (1.5, 10, 255)),  # shrunk 1.34x: PIL's filter is wider, edges differ a little
            ((100, 50, 400, 420), (0, 0, 0)),  # shrunk 1.65x: beyond the warp's range, PIL's resize itself
        ):
            for flip in (False, True):
                warped, pil = crop_resized(image, box, 224, flip), crop_resized(image, box, 224, flip, warp=False)
                assert warped.shape == pil.shape == (224, 224, *image.shape[2:])
                diff = np.abs(warped.astype(np.int32) - pil)
                assert diff.mean() <= mean and np.percentile(diff, 99) <= p99 and diff.max() <= most, (box, flip)
                assert np.abs(warped.astype(np.int32) - pil[:, ::-1]).mean() > 15  # and flipped only when asked
