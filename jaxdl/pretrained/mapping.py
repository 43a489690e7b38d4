"""Put a PyTorch state dict (numpy arrays by torch key) into a jaxdl zoo model, or say in one line why not.

A family module names, for every jaxdl module that holds weights, the torch module it comes
from (`stages.0.1.conv1.conv` -> `layer1.1.conv1`); leaves are renamed generically (Conv /
Linear `kernel` -> `weight`, BatchNorm `scale, bias, mean, var` -> `weight, bias, running_mean,
running_var`, LayerNorm `scale` -> `weight`) and transposed by rank: a conv kernel OIHW -> HWIO,
a dense kernel (out, in) -> (in, out). A family may name whole leaves (`class_token`) and adjust
an array (a flatten order) itself.
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np
from flax import nnx

from jaxdl.errors import CheckpointError
from jaxdl.trees import map_named, named_leaves

LEAF_NAMES = {"kernel": "weight", "scale": "weight", "bias": "bias", "mean": "running_mean", "var": "running_var"}

# Torch buffers that carry no weight (BatchNorm's update counter).
SKIPPED_SUFFIXES = (".num_batches_tracked",)

Adjust = Callable[[str, np.ndarray], np.ndarray]


def to_jax_layout(array: np.ndarray, leaf: str) -> np.ndarray:
    """A torch array in jaxdl's layout: conv kernels OIHW -> HWIO, dense kernels transposed."""
    if leaf == "kernel" and array.ndim == 4:
        return array.transpose(2, 3, 1, 0)
    if leaf == "kernel" and array.ndim == 2:
        return array.T
    return array


def torch_key(name: str, names: Mapping[str, str]) -> str | None:
    """The torch key of jaxdl leaf `name`: named as a whole, or as its module's torch prefix + the leaf's torch name."""
    if name in names:
        return names[name]
    module, _, leaf = name.rpartition(".")
    prefix = names.get(module)
    return None if prefix is None or leaf not in LEAF_NAMES else f"{prefix}.{LEAF_NAMES[leaf]}"


def weight_leaves(model: nnx.Module) -> dict[str, object]:
    """The model's parameters and batch statistics by dotted name (RNG state left out)."""
    _, params, stats = nnx.split(model, nnx.Param, nnx.BatchStat, ...)[:3]
    return {**named_leaves(params), **named_leaves(stats)}


def _listed(kind: str, items: list[str]) -> str:
    more = f" and {len(items) - 3} more" if len(items) > 3 else ""
    return f"{kind} {', '.join(items[:3])}{more}"


def load_state_dict(
    model: nnx.Module,
    state_dict: Mapping[str, np.ndarray],
    names: Mapping[str, str],
    *,
    ignore: tuple[str, ...] = (),
    adjust: Adjust | None = None,
    what: str = "the model",
) -> None:
    """Copy every weight of `model` from `state_dict`; every torch key must be used (except `ignore`d prefixes)."""
    leaves = weight_leaves(model)
    arrays, missing, wrong, used = {}, [], [], set()
    for name, leaf in leaves.items():
        key = torch_key(name, names)
        if key is None or key not in state_dict:
            missing.append(key or f"(jaxdl {name})")
            continue
        used.add(key)
        array = to_jax_layout(np.asarray(state_dict[key], dtype=np.float32), name.rpartition(".")[2])
        if adjust is not None:
            array = adjust(name, array)
        if array.shape != leaf.shape:
            wrong.append(f"{key} {tuple(np.shape(state_dict[key]))} (needs {tuple(leaf.shape)} as jaxdl {name})")
        arrays[name] = array
    unexpected = [
        k
        for k in state_dict
        if k not in used and not k.endswith(SKIPPED_SUFFIXES) and not any(k == p or k.startswith(p + ".") for p in ignore)
    ]
    problems = [
        _listed(kind, items)
        for kind, items in (("missing keys", missing), ("unexpected keys", unexpected), ("wrongly shaped", wrong))
        if items
    ]
    if problems:
        raise CheckpointError(f"the state dict does not fit {what}: {'; '.join(problems)}")
    _, params, stats, _ = nnx.split(model, nnx.Param, nnx.BatchStat, ...)
    fill = lambda name, leaf: arrays[name].astype(leaf.dtype)
    nnx.update(model, map_named(fill, params), map_named(fill, stats))
