"""The model registry: `@register("name")` on a factory, `build(cfg, ...)` from `conf/model/*.yaml`."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, Mapping

import jax.numpy as jnp
from flax import nnx

from jaxdl.registry import Registry, call_with_options

MODELS: Registry[Callable[..., nnx.Module]] = Registry("model")
register = MODELS.register

# Keys of conf/model/*.yaml that are not constructor options but change a built model, each
# applied by the adapter a plugin registers for it: `(model, model name, value) -> model`
# (xai.compress registers `channels`, the widths of a structurally pruned model).
ADAPTERS: Registry[Callable[[nnx.Module, str, Any], nnx.Module]] = Registry("model config key")

# Keys of conf/model/*.yaml that describe the input rather than the network.
INPUT_KEYS = ("name", "input_size")


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """What the model sees: image size (H, W), channels and number of classes."""

    size: tuple[int, int]
    channels: int
    num_classes: int


def input_size(cfg: Mapping[str, Any], native: tuple[int, int]) -> tuple[int, int]:
    """The model's input size from its config (`input_size: 32` or `[H, W]`), else the data's own."""
    size = cfg.get("input_size")
    if size is None:
        return native
    return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))


def build(cfg: Mapping[str, Any], spec: InputSpec, seed: int, dtype: Any = jnp.float32) -> nnx.Module:
    """Instantiate the registered model `cfg['name']` with the remaining keys as options."""
    name = str(cfg.get("name"))
    factory = MODELS.get(name)
    takes = inspect.signature(factory).parameters
    extra = {k: v for k, v in cfg.items() if k not in takes and k not in INPUT_KEYS}
    adapted = {k: v for k, v in extra.items() if v and k in ADAPTERS}
    options = {k: v for k, v in cfg.items() if k not in INPUT_KEYS and k not in adapted and not (k in extra and not v)}
    model = call_with_options(
        factory,
        options,
        f"model '{name}'",
        spec=spec,
        dtype=dtype,
        rngs=nnx.Rngs(params=seed, dropout=seed + 1),
    )
    for key, value in adapted.items():
        model = ADAPTERS.get(key)(model, name, value)
    return model


def build_unfilled(cfg: Mapping[str, Any], spec: InputSpec, seed: int = 0, dtype: Any = jnp.float32) -> nnx.Module:
    """The model with shapes instead of parameters and batch statistics, for the caller to fill (`nnx.update`)."""
    return unfilled(lambda: build(cfg, spec, seed, dtype), seed)


def unfilled(make: Callable[[], nnx.Module], seed: int = 0) -> nnx.Module:
    """The module `make()` builds, with shapes instead of parameters and batch statistics.

    Initialising a large network eagerly on a CPU compiles every initialiser per layer shape
    (half a minute for a ResNet-18); a model whose weights are all about to be replaced skips
    that. Its other state (dropout RNG streams, seeded by `seed`) is real.
    """
    import jax

    model = nnx.eval_shape(make)
    graphdef, weights, rest = nnx.split(model, (nnx.Param, nnx.BatchStat), ...)
    real = jax.tree.map(
        lambda s: jax.random.key(seed) if jax.dtypes.issubdtype(s.dtype, jax.dtypes.prng_key) else jnp.zeros(s.shape, s.dtype),
        rest,
    )
    return nnx.merge(graphdef, weights, real)
