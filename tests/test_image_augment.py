"""RandAugment and random erasing in the jitted step: each op against torchvision / PIL on the same uint8 image,
n ops per image, the erased box's distribution, per-example keys and determinism."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image, ImageOps
from skimage import data as skdata

from jaxdl import randaugment
from jaxdl.errors import ConfigError
from jaxdl.image_augment import image_augment
from jaxdl.random_erasing import erase

RGB = np.asarray(Image.fromarray(skdata.astronaut()).resize((48, 40)))  # a real photograph, (40, 48, 3) uint8
GREY = np.asarray(Image.fromarray(skdata.camera()).resize((36, 30)))[..., None]  # (30, 36, 1)


def torchvision_op(name: str, image: np.ndarray, m: float) -> np.ndarray:
    """torchvision's `RandAugment._apply_image_or_video_transform` at its bin 3m of 31 (m on the 0-10 scale)."""
    import torch
    import torchvision.transforms.v2.functional as F
    from torchvision.transforms import InterpolationMode

    NEAREST = InterpolationMode.NEAREST
    t = torch.from_numpy(image.transpose(2, 0, 1).copy())
    h, w = image.shape[:2]
    sign, top = (-1 if m < 0 else 1), lambda hi: abs(m) / 10 * hi  # noqa: E731
    affine = dict(angle=0.0, translate=[0, 0], scale=1.0, shear=[0.0, 0.0], interpolation=NEAREST, fill=None)
    shear = math.degrees(math.atan(sign * top(0.3)))
    calls = {
        "identity": lambda: t,
        "shear_x": lambda: F.affine(t, **{**affine, "shear": [shear, 0.0]}, center=[0, 0]),
        "shear_y": lambda: F.affine(t, **{**affine, "shear": [0.0, shear]}, center=[0, 0]),
        "translate_x": lambda: F.affine(t, **{**affine, "translate": [int(sign * top(150 / 331 * w)), 0]}),
        "translate_y": lambda: F.affine(t, **{**affine, "translate": [0, int(sign * top(150 / 331 * h))]}),
        "rotate": lambda: F.rotate(t, sign * top(30.0), interpolation=NEAREST, fill=None),
        "brightness": lambda: F.adjust_brightness(t, 1.0 + sign * top(0.9)),
        "color": lambda: F.adjust_saturation(t, 1.0 + sign * top(0.9)),
        "contrast": lambda: F.adjust_contrast(t, 1.0 + sign * top(0.9)),
        "sharpness": lambda: F.adjust_sharpness(t, 1.0 + sign * top(0.9)),
        "posterize": lambda: F.posterize(t, int(8 - round(top(4.0)))),
        "solarize": lambda: F.solarize(t, 255.0 - top(255.0)),
        "autocontrast": lambda: F.autocontrast(t),
        "equalize": lambda: F.equalize(t),
    }
    return calls[name]().numpy().transpose(1, 2, 0).astype(np.float32)


@functools.cache
def _ops_at(shape: tuple[int, ...]):
    table = randaugment.ops(*shape[:2])
    return list(table), jax.jit(lambda img, mag: [fn(img, mag) for fn in table.values()])


def all_ops(image: np.ndarray, m: float) -> dict[str, np.ndarray]:
    """Every op on `image` at signed magnitude `m` (one compilation per image shape)."""
    names, fn = _ops_at(image.shape)
    return dict(zip(names, map(np.asarray, fn(jnp.asarray(image, jnp.float32), jnp.float32(m)))))


@pytest.mark.parametrize("image", [RGB, GREY], ids=["rgb", "grey"])
def test_every_op_matches_torchvision_on_the_same_uint8_image(image):
    """Exact for 13 ops; `color` within 1 level on under 5% of pixels (the blend's float rounding before
    torchvision's truncation to uint8). Grey images are supported by every op (colour leaves them as they are)."""
    pytest.importorskip("torchvision")  # the torch extra: the reference, not needed to train
    assert len(randaugment.ops(8, 8)) == 14
    for m in (10.0, -7.0, 3.0):
        for name, ours in all_ops(image, m).items():
            diff = np.abs(ours - torchvision_op(name, image, m))
            if name == "color":
                assert diff.max() <= 1 and np.mean(diff > 0) < 0.05, (name, m)
            else:
                assert diff.max() == 0, (name, m, diff.max(), np.mean(diff > 0))
            if name not in ("identity", "autocontrast") and not (name == "color" and image.shape[-1] == 1):
                assert not np.array_equal(ours, image), (name, m)  # the op did something


def test_imageops_match_pil():
    """The same ops against PIL's ImageOps (the original AutoAugment code's reference), RGB and grey."""
    for image, mode in ((RGB, "RGB"), (GREY[..., 0], "L")):
        pil = Image.fromarray(image, mode)
        ours = all_ops(image.reshape(image.shape[0], image.shape[1], -1), 7.0)
        expected = {
            "autocontrast": ImageOps.autocontrast(pil),
            "equalize": ImageOps.equalize(pil),
            "posterize": ImageOps.posterize(pil, 8 - round(0.4 * 7)),
            "solarize": ImageOps.solarize(pil, 255 - 0.7 * 255),
        }
        for name, ref in expected.items():  # autocontrast: PIL's own float order moves a rare pixel by 1 level
            diff = np.abs(ours[name].reshape(image.shape) - np.asarray(ref, np.float32))
            assert diff.max() <= (1 if name == "autocontrast" else 0) and np.mean(diff > 0) < 0.01, (name, mode)


def test_rand_augment_applies_n_ops_drawn_uniformly_with_random_signs():
    img = jnp.asarray(RGB, jnp.float32)
    fn = jax.jit(jax.vmap(lambda key: randaugment.rand_augment(key, img, 2, 9.0)))
    outs, chosen, mags = map(np.asarray, fn(jax.random.split(jax.random.key(0), 60)))
    names = list(randaugment.ops(8, 8))
    for out, ops_, ms in list(zip(outs, chosen, mags))[:8]:
        replay = RGB.astype(np.float32)
        for i, m in zip(ops_, ms):
            replay = all_ops(replay, m)[names[i]]
        diff = np.abs(out - replay)  # exactly these two ops in this order (1 level: XLA's fusion vs the replay's)
        assert diff.max() <= 1 and np.mean(diff > 0) < 0.01
    assert chosen.shape == (60, 2) and set(np.abs(mags).ravel()) == {9.0}
    counts = np.bincount(chosen.ravel(), minlength=14)
    assert counts.min() >= 2 and counts.max() <= 20  # 120 draws over 14 ops: uniform, none missing
    assert 20 <= np.sum(mags < 0) <= 70  # about half of the 9/14 signed draws


def erased_boxes(p: float, area=(0.02, 1 / 3), aspect=(0.5, 2.0), value="random", n=1000, size=48):
    x = jax.random.normal(jax.random.key(1), (n, size, size, 1))
    keys = jax.random.split(jax.random.key(2), n)
    out = jax.jit(jax.vmap(lambda k, img: erase(k, img, p, area, aspect, value)))(keys, x)
    return np.asarray(x), np.asarray(out)


def test_random_erasing_boxes_follow_the_configured_distribution():
    lo, hi = 0.02, 1 / 3
    x, out = erased_boxes(0.5, (lo, hi), (0.5, 2.0))
    changed = np.any(out != x, axis=-1)
    erased = changed.any(axis=(1, 2))
    assert abs(erased.mean() - 0.5) < 4 * math.sqrt(0.25 / len(x))  # probability p per image
    fractions = []
    for mask, before, after in zip(changed[erased], x[erased], out[erased]):
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        h, w = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
        box = np.zeros_like(mask)
        box[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = True
        np.testing.assert_array_equal(mask, box)  # one solid rectangle, every pixel in it changed
        np.testing.assert_array_equal(after[~box], before[~box])  # pixels outside untouched, bit for bit
        assert (h - 0.5) * (w - 0.5) <= hi * 48 * 48 and (h + 0.5) * (w + 0.5) >= lo * 48 * 48  # area, rounding
        assert (h - 0.5) / (w + 0.5) <= 2.0 and (h + 0.5) / (w - 0.5) >= 0.5  # aspect, rounding
        fractions.append(h * w / 48 / 48)
    # the area fraction is uniform on [lo, hi] (Kolmogorov-Smirnov distance, about 500 boxes, 0.5 px rounding)
    f = np.sort(fractions)
    ks = np.max(np.abs(np.arange(1, len(f) + 1) / len(f) - (f - lo) / (hi - lo)))
    assert ks < 0.07, ks
    noise = out[erased][np.broadcast_to(changed[erased][..., None], out[erased].shape)]
    assert abs(noise.mean()) < 0.02 and abs(noise.std() - 1) < 0.02  # N(0, 1) per pixel (timm's mode=pixel)


def test_batch_augment_is_per_example_deterministic_and_grey_works():
    """RandAugment on the un-normalised grey levels, then a zero box (the mean colour) on every image."""
    mean, std = (0.3,), (0.2,)
    settings = {"randaugment": {"n": 2, "m": 9}, "random_erasing": {"p": 1.0, "value": "zero"}}
    augment = jax.jit(image_augment(settings, mean, std, 1))
    batch = jnp.broadcast_to((jnp.asarray(GREY, jnp.float32) / 255 - 0.3) / 0.2, (8, *GREY.shape))
    a, b = np.asarray(augment(jax.random.key(4), batch)), np.asarray(augment(jax.random.key(4), batch))
    np.testing.assert_array_equal(a, b)  # a function of the key alone
    assert len({img.tobytes() for img in a}) == 8  # eight identical inputs, eight different outputs
    assert not np.array_equal(a, augment(jax.random.key(5), batch))
    for img in a:
        zero = img[..., 0] == 0
        assert zero.sum() >= 0.02 * zero.size - 6 * zero.shape[0]  # the erased box (area >= 2 %, rounding)
        levels = img[~zero] * 0.2 + 0.3
        np.testing.assert_allclose(levels * 255, np.round(levels * 255), atol=1e-3)  # whole uint8 levels elsewhere
    assert image_augment({"randaugment": {"n": 0}, "random_erasing": {"p": 0.0}}, mean, std, 1) is None


@pytest.mark.parametrize(
    "augment, channels, message",
    [
        ({"randaugment": {"n": 2, "m": 9}}, 4, "needs grey or RGB images"),
        ({"randaugment": {"n": 2, "m": 11}}, 3, "randaugment.m must be between 0 and 10"),
        ({"randaugment": {"n": -1}}, 3, "randaugment.n must be a whole number"),
        ({"random_erasing": {"p": 1.5}}, 3, "random_erasing.p must be a probability"),
        ({"random_erasing": {"p": 0.5, "area": [0.5, 0.1]}}, 3, "random_erasing.area must be"),
        ({"random_erasing": {"p": 0.5, "value": "mean"}}, 3, "random_erasing.value must be one of random, zero"),
    ],
)
def test_bad_settings_are_one_line_errors(augment, channels, message):
    with pytest.raises(ConfigError, match=message):
        image_augment(augment, (0.5,) * channels, (0.5,) * channels, channels)


def test_a_composed_config_is_refused_before_anything_is_written():
    """What `jaxdl-train data.augment.randaugment.m=11` meets first: validate.check_settings, with no JAX work."""
    from jaxdl.validate import check_settings
    from tests.conftest import compose_config

    check_settings(compose_config("data.augment.randaugment.n=2", "data.augment.random_erasing.p=0.25"))
    for override, message in (
        ("data.augment.randaugment.m=11", "randaugment.m must be between 0 and 10"),
        ("data.augment.random_erasing.area=[a,b]", r"random_erasing.area must be \[low, high\]"),
    ):
        with pytest.raises(ConfigError, match=message):
            check_settings(compose_config(override))
