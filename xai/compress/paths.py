"""Names for the leaves of parameter trees: 'hidden/0/kernel', as users write them in configs."""

from __future__ import annotations

from typing import Any

import jax


def path_name(path: tuple) -> str:
    """'conv1/kernel' for a pytree key path (NNX's trailing `.value` is dropped)."""
    parts = [str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path]
    if parts and parts[-1] == "value":
        parts.pop()
    return "/".join(parts)


def map_named(fn, tree: Any, *rest: Any) -> Any:
    """`jax.tree.map` whose function also receives the leaf's path name first."""
    return jax.tree_util.tree_map_with_path(lambda path, *leaves: fn(path_name(path), *leaves), tree, *rest)
