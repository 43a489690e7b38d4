"""Building blocks shared by the CNN families: conv + norm + ReLU, pooling as modules, adaptive pooling.

Pooling and activations are modules here so that a network's `features` list reads
like torchvision's `nn.Sequential` and every entry is a named, hookable layer
(`features.3`) that the explanation tools can target.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from jaxdl.errors import ConfigError

VARIANTS = ("small", "imagenet")

# torchvision's BatchNorm momentum 0.1 is Flax's 0.9 (Flax weighs the running value).
BN_MOMENTUM = 0.9


def check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ConfigError(f"model.variant must be one of {', '.join(VARIANTS)}, got '{variant}'")


def pair(value: int | Sequence[int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


class ConvBN(nnx.Module):
    """Convolution, optional batch norm, optional ReLU.

    `padding` is an int or (h, w) pair of symmetric zero padding, as in PyTorch. The conv
    has a bias unless batch norm follows it (`bias` overrides, as torchvision's VGG-BN).
    """

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int | Sequence[int],
        stride: int = 1,
        padding: int | Sequence[int] = 0,
        *,
        norm: bool = False,
        relu: bool = True,
        bias: bool | None = None,
        bn_eps: float = 1e-5,
        dtype: Any = None,
        rngs: nnx.Rngs,
    ):
        ph, pw = pair(padding)
        self.conv = nnx.Conv(
            cin,
            cout,
            pair(kernel),
            pair(stride),
            padding=((ph, ph), (pw, pw)),
            use_bias=not norm if bias is None else bias,
            kernel_init=nnx.initializers.kaiming_normal() if relu else nnx.initializers.lecun_normal(),
            dtype=dtype,
            rngs=rngs,
        )
        self.norm = nnx.BatchNorm(cout, momentum=BN_MOMENTUM, epsilon=bn_eps, dtype=dtype, rngs=rngs) if norm else None
        self.relu = relu

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        return jax.nn.relu(x) if self.relu else x


def _ceil_padding(size: int, window: int, stride: int, pad: int) -> int:
    """Extra right padding so that pooling rounds the output size up (PyTorch `ceil_mode=True`)."""
    out = math.ceil((size + 2 * pad - window) / stride) + 1
    if (out - 1) * stride >= size + pad:  # PyTorch: the last window must start inside the input
        out -= 1
    return max(0, (out - 1) * stride + window - size - 2 * pad)


class Pool(nnx.Module):
    """Max or average pooling with PyTorch's padding and `ceil_mode` semantics."""

    def __init__(self, window: int, stride: int | None = None, padding: int = 0, *, kind: str = "max", ceil_mode: bool = False):
        self.window, self.stride, self.padding = window, stride or window, padding
        self.kind, self.ceil_mode = kind, ceil_mode

    def __call__(self, x: jax.Array) -> jax.Array:
        p, k, s = self.padding, self.window, self.stride
        extra = [(_ceil_padding(n, k, s, p) if self.ceil_mode else 0) for n in x.shape[1:3]]
        pads = ((0, 0), (p, p + extra[0]), (p, p + extra[1]), (0, 0))
        if self.kind == "max":
            x = jnp.pad(x, pads, constant_values=-jnp.inf)
            return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, k, k, 1), (1, s, s, 1), "VALID")
        # count_include_pad=True (PyTorch's default) for the symmetric padding, excluded for the ceil padding
        ones = jnp.pad(jnp.ones((1, *x.shape[1:3], 1), x.dtype), ((0, 0), (p, p), (p, p), (0, 0)), constant_values=1)
        ones = jnp.pad(ones, ((0, 0), (0, extra[0]), (0, extra[1]), (0, 0)))
        x = jnp.pad(x, pads)
        window = lambda v: jax.lax.reduce_window(v, 0.0, jax.lax.add, (1, k, k, 1), (1, s, s, 1), "VALID")
        return window(x) / window(ones)


def adaptive_avg_pool(x: jax.Array, size: int | Sequence[int]) -> jax.Array:
    """PyTorch's AdaptiveAvgPool2d: output cell i averages rows floor(i*H/oh) .. ceil((i+1)*H/oh)."""
    oh, ow = pair(size)
    h, w = x.shape[1:3]
    if (h, w) == (oh, ow):
        return x
    if h % oh == 0 and w % ow == 0:
        return x.reshape(x.shape[0], oh, h // oh, ow, w // ow, x.shape[-1]).mean(axis=(2, 4))
    bounds = lambda n, o: [(i * n // o, -(-(i + 1) * n // o)) for i in range(o)]
    rows = [jnp.stack([x[:, r0:r1, c0:c1].mean(axis=(1, 2)) for c0, c1 in bounds(w, ow)], axis=1) for r0, r1 in bounds(h, oh)]
    return jnp.stack(rows, axis=1)


def global_avg_pool(x: jax.Array) -> jax.Array:
    return x.mean(axis=(1, 2))


class Classifier(nnx.Module):
    """Dropout-separated dense layers after flattening (AlexNet / VGG heads)."""

    def __init__(self, widths: Sequence[int], dropout: float, *, dtype: Any = None, rngs: nnx.Rngs):
        self.layers = nnx.List([nnx.Linear(a, b, dtype=dtype, rngs=rngs) for a, b in zip(widths, widths[1:])])
        self.dropout = nnx.Dropout(dropout, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.reshape(x.shape[0], -1)
        for layer in self.layers[:-1]:
            x = self.dropout(jax.nn.relu(layer(x)))
        return self.layers[-1](x)


def run_sequence(layers: Sequence[nnx.Module], x: jax.Array) -> jax.Array:
    for layer in layers:
        x = layer(x)
    return x
