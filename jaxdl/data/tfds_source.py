"""Any TFDS image classification data set, read with `tfds.data_source` (no TensorFlow needed)."""

from __future__ import annotations

import numpy as np

from jaxdl.data.base import Dataset, Split, carve
from jaxdl.errors import DataError


def _prepare_hint(name: str, data_dir: str | None) -> str:
    where = f" --data_dir={data_dir}" if data_dir else ""
    return f"prepare it once with: pip install 'jaxdl[tfds]' && tfds build {name}{where} --file_format=array_record"


def _read_split(source, image_key: str, label_key: str) -> Split:
    examples = [source[i] for i in range(len(source))]
    if not examples:
        raise DataError("the TFDS split is empty")
    images = np.stack([np.asarray(ex[image_key]) for ex in examples])
    if images.ndim == 3:
        images = images[..., None]
    labels = np.asarray([ex[label_key] for ex in examples], dtype=np.int32)
    return Split(images.astype(np.uint8), labels)


def load(
    name: str,
    data_dir: str | None = None,
    train_split: str = "train",
    val_split: str | None = None,
    test_split: str = "test",
    val_fraction: float = 0.1,
    split_seed: int = 0,
    image_key: str = "image",
    label_key: str = "label",
) -> Dataset:
    """Load a prepared TFDS data set; without a validation split one is carved from train."""
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError as err:
        raise DataError(f"unknown TFDS data set '{name}' (see tfds.list_builders())") from err
    splits = [train_split, test_split] + ([val_split] if val_split else [])
    try:
        sources = tfds.data_source(name, split=splits, data_dir=data_dir, download=False)
    except (AssertionError, FileNotFoundError, KeyError, ValueError, NotImplementedError, tfds.core.registered.DatasetNotFoundError) as err:
        where = data_dir or builder.data_dir
        raise DataError(f"TFDS data set '{name}' is not prepared in {where}; {_prepare_hint(name, data_dir)}") from err
    train = _read_split(sources[0], image_key, label_key)
    test = _read_split(sources[1], image_key, label_key)
    if val_split:
        val = _read_split(sources[2], image_key, label_key)
    else:
        train, val = carve(train, val_fraction, split_seed)
    label_feature = builder.info.features[label_key]
    names = getattr(label_feature, "names", None) or [str(c) for c in range(label_feature.num_classes)]
    return Dataset(name, train, val, test, tuple(names))


def is_prepared(name: str, data_dir: str | None = None) -> bool:
    import tensorflow_datasets as tfds

    try:
        return tfds.builder(name, data_dir=data_dir).is_prepared()
    except Exception:  # noqa: BLE001 - any failure means "not usable here"
        return False
