"""Data sources chosen by `conf/data/*.yaml` (`source: digits | idx | tfds | folder | packed | signals1d`)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import inspect

from jaxdl.data import digits, folder, idx, packed, signals, tfds_source
from jaxdl.data.base import Dataset, Split  # noqa: F401  (jaxdl.data.Split)
from jaxdl.data.select import SELECTION_KEYS, apply_selection
from jaxdl.errors import DataError, unknown_name
from jaxdl.registry import call_with_options


def _load_digits(name: str = "digits", test_fraction: float = 0.2, val_fraction: float = 0.1, split_seed: int = 0) -> Dataset:
    return digits.load(test_fraction=test_fraction, val_fraction=val_fraction, split_seed=split_seed)


def _load_idx(
    name: str,
    dirs: Sequence[str],
    class_names: Sequence[str] = (),
    train_prefix: str = "train",
    test_prefix: str = "t10k",
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    split_seed: int = 0,
    tfds_name: str | None = None,
    tfds_data_dir: str | None = None,
    pixels: str = "uint8",
) -> Dataset:
    """IDX files from the first directory that has them, else the same data set from TFDS."""
    if not dirs:
        raise DataError(f"data set '{name}' has no directories to read; set data.dirs=[PATH] to the directory with the IDX files")
    if idx.find_directory(dirs, test_prefix) is not None:
        return idx.load(name, dirs, class_names, train_prefix, test_prefix, val_fraction, test_fraction, split_seed, pixels)
    if tfds_name and tfds_source.is_prepared(tfds_name, tfds_data_dir):
        return tfds_source.load(tfds_name, data_dir=tfds_data_dir, val_fraction=val_fraction, split_seed=split_seed)
    hint = "apt-get install dataset-fashion-mnist" if "fashion" in name else "put the four IDX files there"
    tfds_hint = f", or prepare TFDS '{tfds_name}' (tfds build {tfds_name})" if tfds_name else ""
    raise DataError(
        f"data set '{name}' not found: no IDX files in {', '.join(map(str, dirs))}; set data.dirs=[PATH] or {hint}{tfds_hint}"
    )


def _load_tfds(name: str, tfds_name: str | None = None, **options: Any) -> Dataset:
    return tfds_source.load(tfds_name or name, **options)


SOURCES = {
    "digits": _load_digits,
    "idx": _load_idx,
    "tfds": _load_tfds,
    "signals1d": signals.load,
    "folder": folder.load,
    "packed": packed.load,
}

# Keys of conf/data/*.yaml that describe the input pipeline rather than the source.
PIPELINE_KEYS = ("source", "augment", "resize", "on_device")


def load_dataset(cfg: Mapping[str, Any]) -> Dataset:
    """Load the data set a `data` config describes, restricted as its selection keys say."""
    source = cfg.get("source")
    if source not in SOURCES:
        raise unknown_name("data source", str(source), list(SOURCES))
    kwargs = {k: v for k, v in cfg.items() if k not in PIPELINE_KEYS + SELECTION_KEYS}
    if "augment" in inspect.signature(SOURCES[source]).parameters:  # a source that augments in its input workers
        kwargs["augment"] = cfg.get("augment")
    return apply_selection(call_with_options(SOURCES[source], kwargs, f"data source '{source}'"), cfg)
