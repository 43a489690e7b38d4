"""Any TFDS image classification data set, read with `tfds.data_source` (no TensorFlow needed).

Small sets are read into memory; sets whose pixels exceed `data.memory_budget_mb` (or
`data.stream=true`) stay in their ArrayRecord files and are read by index through Grain
(`RecordSplit`); only the labels are read up front.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from jaxdl.data.base import Dataset, Split, carve
from jaxdl.data.file_split import RecordSplit
from jaxdl.data.stream import default_workers
from jaxdl.errors import ConfigError, DataError


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


def _record_split(source, image_key: str, label_key: str, shape: tuple[int, int, int], workers: int) -> RecordSplit:
    """The split by index: its labels read once (in threads), its images left in the records."""
    if not len(source):
        raise DataError("the TFDS split is empty")
    with ThreadPoolExecutor(workers) as pool:
        labels = np.fromiter(pool.map(lambda i: source[i][label_key], range(len(source))), np.int32, len(source))
    return RecordSplit(source, np.arange(len(source)), labels, shape, image_key, workers)


def _wants_stream(stream, sources, shape: tuple[int, ...], memory_budget_mb: float) -> bool:
    choice = str(stream).lower()
    if choice not in ("auto", "true", "false"):
        raise ConfigError(f"data.stream must be auto, true or false, got '{stream}'")
    if choice == "auto":
        return sum(len(s) for s in sources) * int(np.prod(shape)) > memory_budget_mb * 2**20
    return choice == "true"


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
    stream: str = "auto",
    memory_budget_mb: float = 1024,
    workers: int | None = None,
) -> Dataset:
    """Load a prepared TFDS data set (in memory, or streamed by index); without a validation split one is carved from train."""
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError as err:
        raise DataError(f"unknown TFDS data set '{name}' (see tfds.list_builders())") from err
    splits = [train_split, test_split] + ([val_split] if val_split else [])
    try:
        sources = tfds.data_source(name, split=splits, data_dir=data_dir, download=False)
    except (
        AssertionError,
        FileNotFoundError,
        KeyError,
        ValueError,
        NotImplementedError,
        tfds.core.registered.DatasetNotFoundError,
    ) as err:
        where = data_dir or builder.data_dir
        raise DataError(f"TFDS data set '{name}' is not prepared in {where}; {_prepare_hint(name, data_dir)}") from err
    shape = tuple(builder.info.features[image_key].shape)
    if _wants_stream(stream, sources, shape, memory_budget_mb):
        if None in shape:
            raise DataError(
                f"TFDS '{name}' has images of varying size {shape}; streaming needs one size "
                "(write it as a folder with jaxdl-data write-folder and use data=folder)"
            )
        workers = int(workers or default_workers())
        read = lambda source: _record_split(source, image_key, label_key, shape, workers)
    else:
        read = lambda source: _read_split(source, image_key, label_key)
    train = read(sources[0])
    test = read(sources[1])
    if val_split:
        val = read(sources[2])
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
