"""Data sets and their input pipelines; `load_dataset` (in `sources`) loads the one a `data` config names.

Import-light on purpose: Grain's worker processes import jaxdl's decoders from this package, and must not
import JAX (which the sources' loaders do) on the way.
"""

from typing import Any

__all__ = ["Dataset", "Split", "load_dataset", "SOURCES"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from jaxdl.data import sources

        return getattr(sources, name)
    raise AttributeError(f"module 'jaxdl.data' has no attribute {name!r}")
