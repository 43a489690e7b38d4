"""Data sources chosen by `conf/data/*.yaml` (`source: digits | idx | tfds`)."""

from __future__ import annotations

from typing import Any, Mapping

from jaxdl.data import digits, idx, tfds_source
from jaxdl.data.base import Dataset, Split
from jaxdl.data.select import SELECTION_KEYS, apply_selection
from jaxdl.errors import DataError, unknown_name
from jaxdl.registry import call_with_options

__all__ = ["Dataset", "Split", "load_dataset", "SOURCES"]


def _load_idx(name: str, dirs, tfds_name: str | None = None, tfds_data_dir: str | None = None, **kwargs) -> Dataset:
    """IDX files from the first directory that has them, else the same data set from TFDS."""
    if idx.find_directory(dirs, kwargs.get("test_prefix", "t10k")) is not None:
        return idx.load(name, dirs, **kwargs)
    if tfds_name and tfds_source.is_prepared(tfds_name, tfds_data_dir):
        return tfds_source.load(tfds_name, data_dir=tfds_data_dir, split_seed=kwargs.get("split_seed", 0))
    hint = "apt-get install dataset-fashion-mnist" if "fashion" in name else "download the four IDX files there"
    tfds_hint = f", or prepare TFDS '{tfds_name}' (tfds build {tfds_name})" if tfds_name else ""
    raise DataError(
        f"data set '{name}' not found: no IDX files in {', '.join(map(str, dirs))}; "
        f"set data.dirs=[PATH] or {hint}{tfds_hint}"
    )


SOURCES = {
    "digits": lambda name, **kw: digits.load(**kw),
    "idx": _load_idx,
    "tfds": lambda name, tfds_name=None, **kw: tfds_source.load(tfds_name or name, **kw),
}

# Keys of conf/data/*.yaml that describe the input pipeline rather than the source.
PIPELINE_KEYS = ("source", "augment", "resize", "on_device")


def load_dataset(cfg: Mapping[str, Any]) -> Dataset:
    """Load the data set a `data` config describes, restricted as its selection keys say."""
    source = cfg.get("source")
    if source not in SOURCES:
        raise unknown_name("data source", str(source), list(SOURCES))
    kwargs = {k: v for k, v in cfg.items() if k not in PIPELINE_KEYS + SELECTION_KEYS}
    return apply_selection(call_with_options(SOURCES[source], kwargs, f"data source '{source}'"), cfg)
