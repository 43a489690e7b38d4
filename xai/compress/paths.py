"""Names for the leaves of parameter trees: the core's dotted names (`hidden.0.kernel`)."""

from jaxdl.trees import map_named, path_name

__all__ = ["map_named", "path_name"]
