"""The model registry: `@register("name")` on a factory, `build(cfg, ...)` from `conf/model/*.yaml`."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import jax.numpy as jnp
from flax import nnx

from jaxdl.registry import Registry, call_with_options

MODELS: Registry[Callable[..., nnx.Module]] = Registry("model")
register = MODELS.register

# Keys of conf/model/*.yaml that are not constructor options: the input, and the channel
# widths of a structurally pruned model (`channels: {conv1: 10, ...}`, written by jaxdl-compress).
INPUT_KEYS = ("name", "input_size", "channels")


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
    factory = MODELS.get(str(cfg.get("name")))
    options = {k: v for k, v in cfg.items() if k not in INPUT_KEYS}
    model = call_with_options(
        factory, options, f"model '{cfg.get('name')}'",
        spec=spec, dtype=dtype, rngs=nnx.Rngs(params=seed, dropout=seed + 1),
    )
    if cfg.get("channels"):
        from xai.compress.channels import shrink_to

        model = shrink_to(model, str(cfg.get("name")), cfg["channels"])
    return model
