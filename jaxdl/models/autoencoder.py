"""Convolutional autoencoder; with `sparsity > 0` (an L1 penalty on the code, applied by the trainer) a sparse one.

Not a classifier: its own registry (`AUTOENCODERS`, config group `conf/autoencoder/`),
trained by `jaxdl-autoencoder`. The `encoder` submodule is the feature extractor.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
from flax import nnx

from jaxdl.errors import ConfigError
from jaxdl.models.registry import InputSpec
from jaxdl.registry import Registry, call_with_options

AUTOENCODERS: Registry = Registry("autoencoder")


class Encoder(nnx.Module):
    """Image -> two stride-2 convs (ReLU) -> a non-negative code of `code_dim` units."""

    def __init__(self, spec: InputSpec, code_dim: int, width: int, dtype: Any, rngs: nnx.Rngs):
        h, w = spec.size
        self.conv1 = nnx.Conv(spec.channels, width, (3, 3), (2, 2), dtype=dtype, rngs=rngs)
        self.conv2 = nnx.Conv(width, 2 * width, (3, 3), (2, 2), dtype=dtype, rngs=rngs)
        self.code = nnx.Linear((h // 4) * (w // 4) * 2 * width, code_dim, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = jax.nn.relu(self.conv2(jax.nn.relu(self.conv1(x))))
        return jax.nn.relu(self.code(x.reshape(x.shape[0], -1)))


class Decoder(nnx.Module):
    """Code -> (H/4, W/4, 2w) -> two x2 transposed convs -> pixels in [0, 1]."""

    def __init__(self, spec: InputSpec, code_dim: int, width: int, dtype: Any, rngs: nnx.Rngs):
        self.base = (spec.size[0] // 4, spec.size[1] // 4)
        self.expand = nnx.Linear(code_dim, self.base[0] * self.base[1] * 2 * width, dtype=dtype, rngs=rngs)
        self.up1 = nnx.ConvTranspose(2 * width, width, (3, 3), (2, 2), dtype=dtype, rngs=rngs)
        self.up2 = nnx.ConvTranspose(width, spec.channels, (3, 3), (2, 2), dtype=dtype, rngs=rngs)

    def __call__(self, code: jax.Array) -> jax.Array:
        x = jax.nn.relu(self.expand(code)).reshape(code.shape[0], *self.base, -1)
        return jax.nn.sigmoid(self.up2(jax.nn.relu(self.up1(x))))


class ConvAutoencoder(nnx.Module):
    def __init__(self, spec: InputSpec, code_dim: int = 32, width: int = 32, dtype: Any = None, rngs: nnx.Rngs = None):
        if spec.size[0] % 4 or spec.size[1] % 4:
            raise ConfigError(f"the convolutional autoencoder needs an image size divisible by 4, got {spec.size}")
        self.encoder = Encoder(spec, code_dim, width, dtype, rngs)
        self.decoder = Decoder(spec, code_dim, width, dtype, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Reconstruction of `x` (pixels in [0, 1])."""
        return self.decoder(self.encoder(x))


@AUTOENCODERS.register("conv")
def conv(spec: InputSpec, code_dim: int = 32, width: int = 32, dtype: Any = None, rngs: nnx.Rngs = None) -> ConvAutoencoder:
    return ConvAutoencoder(spec, code_dim, width, dtype, rngs)


def build_autoencoder(cfg: Mapping[str, Any], spec: InputSpec, seed: int, dtype: Any = jnp.float32) -> ConvAutoencoder:
    """The registered autoencoder `cfg['architecture']`; `name` and `sparsity` belong to the trainer."""
    options = {k: v for k, v in cfg.items() if k not in ("name", "architecture", "sparsity")}
    arch = str(cfg.get("architecture"))
    return call_with_options(
        AUTOENCODERS.get(arch), options, f"autoencoder '{arch}'", spec=spec, dtype=dtype, rngs=nnx.Rngs(params=seed)
    )
