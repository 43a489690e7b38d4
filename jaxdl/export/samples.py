"""The inputs an export is verified on: the run's test images, given photos, or (imported networks) sample photos."""

from __future__ import annotations

import numpy as np

from jaxdl.artifacts import LoadedModel

VERIFY_BATCH = 64
SAMPLE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "coins", "moon", "page", "horse", "hubble_deep_field")


def test_split(loaded: LoadedModel):
    """The run's test split (images, labels), or None for a model without a data config (imported, saved)."""
    if loaded.cfg is None or "data" not in loaded.cfg:
        return None
    from jaxdl.data import load_dataset

    test = load_dataset(loaded.cfg.data).test
    return test.images, test.labels


def verification_inputs(loaded: LoadedModel, images: str | None = None, count: int = VERIFY_BATCH) -> np.ndarray:
    """Up to `count` raw inputs as the model takes them: photos at `images`, else the test split, else sample photos."""
    from jaxdl.data.photos import find_images, read_photos

    if images:
        return read_photos(find_images(images)[:count], loaded.preprocess, loaded.spec.channels)
    split = test_split(loaded)
    if split is not None:
        return split[0][:count]
    if loaded.card.input_dtype != "uint8":
        rng = np.random.default_rng(0)
        return rng.standard_normal((count, *loaded.spec.size, loaded.spec.channels)).astype(np.float32)
    return sample_photos(loaded)


def sample_photos(loaded: LoadedModel) -> np.ndarray:
    """scikit-image's photographs (on every machine), fitted to the model's input as jaxdl-predict fits files."""
    import skimage.data
    from PIL import Image

    from jaxdl.data.photos import fit_photo

    photos = [Image.fromarray(np.asarray(getattr(skimage.data, name)())) for name in SAMPLE_PHOTOS]
    return np.stack([fit_photo(p, loaded.preprocess, loaded.spec.channels) for p in photos])
