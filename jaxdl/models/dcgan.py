"""DCGAN (Radford et al. 2016) generator and discriminator, and the class-conditional variant.

These are not classifiers, so they live in their own registry (`GANS`, config group
`conf/gan/`) and train with `jaxdl-gan` rather than `jaxdl-train`.
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from jaxdl.errors import ConfigError
from jaxdl.models.registry import InputSpec
from jaxdl.registry import Registry, call_with_options

GANS: Registry = Registry("gan")

_init = nnx.initializers.normal(0.02)  # the DCGAN paper's weight initialisation


def _with_labels(x: jax.Array, labels: jax.Array | None, num_classes: int) -> jax.Array:
    """Append one-hot labels to the last axis, broadcast over any spatial axes (conditioning by concatenation)."""
    if labels is None:
        return x
    onehot = jax.nn.one_hot(labels, num_classes, dtype=x.dtype)
    return jnp.concatenate(
        [
            x,
            jnp.broadcast_to(
                onehot.reshape(onehot.shape[:1] + (1,) * (x.ndim - 2) + onehot.shape[1:]), x.shape[:-1] + (num_classes,)
            ),
        ],
        axis=-1,
    )


def _base_size(spec: InputSpec) -> tuple[int, int]:
    h, w = spec.size
    if h % 4 or w % 4:
        raise ConfigError(f"DCGAN needs an image size divisible by 4 (two stride-2 stages), got {h}x{w}")
    return h // 4, w // 4


class Generator(nnx.Module):
    """Noise (plus a class label when conditional) -> project to (H/4, W/4, 2w) -> two x2 transposed convs -> tanh."""

    def __init__(self, spec: InputSpec, latent_dim: int, width: int, conditional: bool, dtype: Any, rngs: nnx.Rngs):
        self.latent_dim, self.num_classes, self.conditional = latent_dim, spec.num_classes, conditional
        self.base = _base_size(spec)
        in_features = latent_dim + (spec.num_classes if conditional else 0)
        self.project = nnx.Linear(in_features, self.base[0] * self.base[1] * 2 * width, kernel_init=_init, dtype=dtype, rngs=rngs)
        self.bn0 = nnx.BatchNorm(2 * width, momentum=0.9, dtype=dtype, rngs=rngs)
        self.up1 = nnx.ConvTranspose(2 * width, width, (4, 4), (2, 2), kernel_init=_init, dtype=dtype, rngs=rngs)
        self.bn1 = nnx.BatchNorm(width, momentum=0.9, dtype=dtype, rngs=rngs)
        self.up2 = nnx.ConvTranspose(width, spec.channels, (4, 4), (2, 2), kernel_init=_init, dtype=dtype, rngs=rngs)

    def __call__(self, z: jax.Array, labels: jax.Array | None = None) -> jax.Array:
        """Images in [-1, 1], NHWC."""
        x = self.project(_with_labels(z, labels if self.conditional else None, self.num_classes))
        x = jax.nn.relu(self.bn0(x.reshape(z.shape[0], *self.base, -1)))
        x = jax.nn.relu(self.bn1(self.up1(x)))
        return jnp.tanh(self.up2(x))


class Discriminator(nnx.Module):
    """Image (plus label planes when conditional) -> two stride-2 convs with leaky ReLU -> one real/fake logit."""

    def __init__(self, spec: InputSpec, width: int, conditional: bool, dtype: Any, rngs: nnx.Rngs):
        self.num_classes, self.conditional = spec.num_classes, conditional
        base = _base_size(spec)
        in_channels = spec.channels + (spec.num_classes if conditional else 0)
        self.conv1 = nnx.Conv(in_channels, width, (4, 4), (2, 2), kernel_init=_init, dtype=dtype, rngs=rngs)
        self.conv2 = nnx.Conv(width, 2 * width, (4, 4), (2, 2), kernel_init=_init, dtype=dtype, rngs=rngs)
        self.bn2 = nnx.BatchNorm(2 * width, momentum=0.9, dtype=dtype, rngs=rngs)
        self.head = nnx.Linear(base[0] * base[1] * 2 * width, 1, kernel_init=_init, dtype=dtype, rngs=rngs)

    def __call__(self, images: jax.Array, labels: jax.Array | None = None) -> jax.Array:
        x = _with_labels(images, labels if self.conditional else None, self.num_classes)
        x = jax.nn.leaky_relu(self.conv1(x), 0.2)
        x = jax.nn.leaky_relu(self.bn2(self.conv2(x)), 0.2)
        return self.head(x.reshape(x.shape[0], -1))[:, 0]


class GAN(NamedTuple):
    generator: Generator
    discriminator: Discriminator


@GANS.register("dcgan")
def dcgan(spec: InputSpec, latent_dim: int = 64, width: int = 64, dtype: Any = None, rngs: nnx.Rngs = None) -> GAN:
    """Unconditional DCGAN."""
    return GAN(Generator(spec, latent_dim, width, False, dtype, rngs), Discriminator(spec, width, False, dtype, rngs))


@GANS.register("cdcgan")
def cdcgan(spec: InputSpec, latent_dim: int = 64, width: int = 64, dtype: Any = None, rngs: nnx.Rngs = None) -> GAN:
    """Class-conditional DCGAN: the label is concatenated to the noise and, as one-hot planes, to the image."""
    return GAN(Generator(spec, latent_dim, width, True, dtype, rngs), Discriminator(spec, width, True, dtype, rngs))


def build_gan(cfg: Mapping[str, Any], spec: InputSpec, seed: int, dtype: Any = jnp.float32) -> GAN:
    """The registered GAN `cfg['name']` with the remaining keys as options."""
    options = {k: v for k, v in cfg.items() if k != "name"}
    return call_with_options(
        GANS.get(str(cfg.get("name"))), options, f"gan '{cfg.get('name')}'", spec=spec, dtype=dtype, rngs=nnx.Rngs(params=seed)
    )
