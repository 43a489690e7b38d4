"""Names for the leaves and layers of NNX state trees, and the PRNG-key codec for storing them.

One naming scheme everywhere: dotted module paths (`conv1`, `hidden.0`, `stages.1.0`), as
the explanation tools and `nnx.iter_modules` write them. Slashes (`hidden/0`), the scheme
of earlier versions, are still accepted in user input with a one-time deprecation note.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import jax
from flax import nnx

log = logging.getLogger("jaxdl")
_warned_slashes: set[str] = set()


def _key_text(key: Any) -> str:
    return str(getattr(key, "key", getattr(key, "name", getattr(key, "idx", key))))


def path_name(path: tuple) -> str:
    """'hidden.0.kernel' for a pytree key path (NNX's trailing `.value` dropped)."""
    parts = [_key_text(k) for k in path]
    if parts and parts[-1] == "value":
        parts.pop()
    return ".".join(parts)


def layer_path(name: str | None) -> str:
    """A user's layer name in the dotted scheme; `hidden/0` still works, with a deprecation note."""
    name = str(name or "").strip()
    if "/" in name:
        dotted = name.strip("/").replace("/", ".")
        if name not in _warned_slashes:
            _warned_slashes.add(name)
            log.warning("layer name '%s' uses slashes, which are deprecated; write '%s'", name, dotted)
        return dotted
    return name.strip(".")


def in_layer(name: str, layer: str | None) -> bool:
    """Whether parameter `name` ('hidden.0.kernel') lies in `layer` ('hidden', 'hidden.0', 'hidden/0')."""
    layer = layer_path(layer)
    return bool(layer) and (name == layer or name.startswith(layer + "."))


def named_leaves(tree: Any) -> dict[str, Any]:
    """{'conv1.kernel': leaf, ...} of a state tree."""
    return {path_name(path): leaf for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def map_named(fn: Callable[..., Any], tree: Any, *rest: Any) -> Any:
    """`jax.tree.map` whose function also receives the leaf's dotted name first."""
    return jax.tree_util.tree_map_with_path(lambda path, *leaves: fn(path_name(path), *leaves), tree, *rest)


def is_key(x: Any) -> bool:
    """A typed PRNG key array (NNX RNG streams hold them)."""
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def keys_to_data(tree: Any) -> Any:
    """Typed PRNG keys as their uint32 data, which checkpoints and files can store."""
    return jax.tree.map(lambda x: jax.random.key_data(x) if is_key(x) else x, tree)


def key_from_data(data: Any, like: Any) -> Any:
    """The typed key of `like`'s implementation holding `data`."""
    return jax.random.wrap_key_data(data, impl=jax.random.key_impl(like))


def keys_from_data(tree: Any, like: Any) -> Any:
    """Inverse of `keys_to_data`, taking the key types from the matching leaves of `like`."""
    return jax.tree.map(lambda x, ref: key_from_data(x, ref) if is_key(ref) else x, tree, like)


def module_names(model: Any) -> list[str]:
    """Every named submodule of an NNX model, e.g. ['conv1', 'conv2', 'head', 'hidden', 'hidden.0']."""
    return sorted(".".join(map(str, path)) for path, _ in nnx.iter_modules(model) if path)


def module_at(model: Any, name: str) -> Any | None:
    """The submodule at a dotted (or slashed) path, or None if there is none."""
    node = model
    for part in layer_path(name).split("."):
        try:
            node = node[int(part)] if part.isdigit() else getattr(node, part)
        except (AttributeError, IndexError, TypeError, KeyError):
            return None
        if not isinstance(node, nnx.Module):
            return None
    return node
