"""GoogLeNet (Inception v1, Szegedy et al. 2014) and Inception v3 with its factorised modules (2015).

Both follow torchvision layer for layer (batch-normalised convs with eps 0.001, no auxiliary
heads), so the ImageNet variants have its parameter counts: GoogLeNet 6,624,904 and
Inception v3 23,834,568. Every Inception module is a `Concat` of branches, each branch a
short sequence of layers.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from jaxdl.models.layers import ConvBN, Pool, check_variant, global_avg_pool, run_sequence
from jaxdl.models.registry import InputSpec, register


class Concat(nnx.Module):
    """Run parallel `branches` (each a sequence of layers) on one input and concatenate their channels."""

    def __init__(self, branches: Sequence[Sequence[nnx.Module]]):
        self.branches = nnx.List([nnx.List(branch) for branch in branches])

    def __call__(self, x: jax.Array) -> jax.Array:
        return jnp.concatenate([run_sequence(branch, x) for branch in self.branches], axis=-1)


def _conv(dtype: Any, rngs: nnx.Rngs):
    """torchvision's BasicConv2d: bias-free conv, batch norm (eps 0.001), ReLU."""
    return partial(ConvBN, norm=True, bn_eps=1e-3, dtype=dtype, rngs=rngs)


def inception_v1(cin: int, c1: int, r3: int, c3: int, r5: int, c5: int, pool: int, *, five: int, conv) -> Concat:
    """The GoogLeNet module: 1x1 | 1x1-3x3 | 1x1-5x5 | 3x3 max pool-1x1.

    `five` is the third branch's kernel: 5 in the paper, 3 in torchvision's weights (a
    documented quirk kept for compatibility, and the one its parameter count is for).
    """
    return Concat(
        [
            [conv(cin, c1, 1)],
            [conv(cin, r3, 1), conv(r3, c3, 3, 1, 1)],
            [conv(cin, r5, 1), conv(r5, c5, five, 1, five // 2)],
            [Pool(3, 1, 1, ceil_mode=True), conv(cin, pool, 1)],
        ]
    )


# (in, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj) of modules 3a-3b, 4a-4e, 5a-5b; "M" a max pool.
GOOGLENET = (
    (192, 64, 96, 128, 16, 32, 32),
    (256, 128, 128, 192, 32, 96, 64),
    "M",
    (480, 192, 96, 208, 16, 48, 64),
    (512, 160, 112, 224, 24, 64, 64),
    (512, 128, 128, 256, 24, 64, 64),
    (512, 112, 144, 288, 32, 64, 64),
    (528, 256, 160, 320, 32, 128, 128),
    "M",
    (832, 256, 160, 320, 32, 128, 128),
    (832, 384, 192, 384, 48, 128, 128),
)


class GoogLeNet(nnx.Module):
    """`stem`, nine Inception modules with pools in between (`inception`), global pool, dropout, `head`.

    `imagenet`: 7x7/2, 1x1, 3x3 stem with two 3x3/2 pools. `small`: one 3x3 conv to 192
    channels (the usual CIFAR GoogLeNet); for 32 px the modules then run at 32, 16 and 8 px.
    """

    def __init__(
        self,
        spec: InputSpec,
        *,
        variant: str = "small",
        five_kernel: int = 3,
        dropout: float = 0.2,
        dtype: Any = None,
        rngs: nnx.Rngs,
    ):
        check_variant(variant)
        conv = _conv(dtype, rngs)
        if variant == "imagenet":
            self.stem = nnx.List(
                [
                    conv(spec.channels, 64, 7, 2, 3),
                    Pool(3, 2, ceil_mode=True),
                    conv(64, 64, 1),
                    conv(64, 192, 3, 1, 1),
                    Pool(3, 2, ceil_mode=True),
                ]
            )
            pools = [Pool(3, 2, ceil_mode=True), Pool(2, 2, ceil_mode=True)]
        else:
            self.stem = nnx.List([conv(spec.channels, 192, 3, 1, 1)])
            pools = [Pool(3, 2, 1), Pool(3, 2, 1)]
        self.inception = nnx.List(
            [pools.pop(0) if m == "M" else inception_v1(*m, five=five_kernel, conv=conv) for m in GOOGLENET]
        )
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.head = nnx.Linear(1024, spec.num_classes, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = run_sequence(self.inception, run_sequence(self.stem, x))
        return self.head(self.dropout(global_avg_pool(x)))


def inception_a(cin: int, pool: int, *, conv) -> Concat:
    """35x35 module (Fig. 5): the 5x5 path factorised into two 3x3 convs (torchvision also keeps a 5x5 path)."""
    return Concat(
        [
            [conv(cin, 64, 1)],
            [conv(cin, 48, 1), conv(48, 64, 5, 1, 2)],
            [conv(cin, 64, 1), conv(64, 96, 3, 1, 1), conv(96, 96, 3, 1, 1)],
            [Pool(3, 1, 1, kind="avg"), conv(cin, pool, 1)],
        ]
    )


def inception_b(cin: int, *, conv) -> Concat:
    """Grid reduction 35 -> 17: strided 3x3 | 1x1-3x3-3x3/2 | max pool."""
    return Concat(
        [
            [conv(cin, 384, 3, 2)],
            [conv(cin, 64, 1), conv(64, 96, 3, 1, 1), conv(96, 96, 3, 2)],
            [Pool(3, 2)],
        ]
    )


def inception_c(cin: int, c7: int, *, conv) -> Concat:
    """17x17 module (Fig. 6): 7x7 convs factorised into 1x7 and 7x1."""
    return Concat(
        [
            [conv(cin, 192, 1)],
            [conv(cin, c7, 1), conv(c7, c7, (1, 7), 1, (0, 3)), conv(c7, 192, (7, 1), 1, (3, 0))],
            [
                conv(cin, c7, 1),
                conv(c7, c7, (7, 1), 1, (3, 0)),
                conv(c7, c7, (1, 7), 1, (0, 3)),
                conv(c7, c7, (7, 1), 1, (3, 0)),
                conv(c7, 192, (1, 7), 1, (0, 3)),
            ],
            [Pool(3, 1, 1, kind="avg"), conv(cin, 192, 1)],
        ]
    )


def inception_d(cin: int, *, conv) -> Concat:
    """Grid reduction 17 -> 8."""
    return Concat(
        [
            [conv(cin, 192, 1), conv(192, 320, 3, 2)],
            [conv(cin, 192, 1), conv(192, 192, (1, 7), 1, (0, 3)), conv(192, 192, (7, 1), 1, (3, 0)), conv(192, 192, 3, 2)],
            [Pool(3, 2)],
        ]
    )


def _split_1x3_3x1(cin: int, cout: int, conv) -> Concat:
    return Concat([[conv(cin, cout, (1, 3), 1, (0, 1))], [conv(cin, cout, (3, 1), 1, (1, 0))]])


def inception_e(cin: int, *, conv) -> Concat:
    """8x8 module (Fig. 7): expanded filter bank, 3x3 split into parallel 1x3 and 3x1."""
    return Concat(
        [
            [conv(cin, 320, 1)],
            [conv(cin, 384, 1), _split_1x3_3x1(384, 384, conv)],
            [conv(cin, 448, 1), conv(448, 384, 3, 1, 1), _split_1x3_3x1(384, 384, conv)],
            [Pool(3, 1, 1, kind="avg"), conv(cin, 192, 1)],
        ]
    )


class InceptionV3(nnx.Module):
    """`stem` convs, then `inception` modules A x3, B, C x4, D, E x2, global pool, dropout, `head`.

    `imagenet`: torchvision's 299x299 network without the auxiliary head. `small`: a
    stride-1 3x3 stem (32, 64) and one module of each kind (A, B, C, D, E) for 28-32 px.
    """

    def __init__(self, spec: InputSpec, *, variant: str = "small", dropout: float = 0.5, dtype: Any = None, rngs: nnx.Rngs):
        check_variant(variant)
        conv = _conv(dtype, rngs)
        if variant == "imagenet":
            self.stem = nnx.List(
                [
                    conv(spec.channels, 32, 3, 2),
                    conv(32, 32, 3),
                    conv(32, 64, 3, 1, 1),
                    Pool(3, 2),
                    conv(64, 80, 1),
                    conv(80, 192, 3),
                    Pool(3, 2),
                ]
            )
            modules = [
                inception_a(192, 32, conv=conv),
                inception_a(256, 64, conv=conv),
                inception_a(288, 64, conv=conv),
                inception_b(288, conv=conv),
                *(inception_c(768, c7, conv=conv) for c7 in (128, 160, 160, 192)),
                inception_d(768, conv=conv),
                inception_e(1280, conv=conv),
                inception_e(2048, conv=conv),
            ]
        else:
            self.stem = nnx.List([conv(spec.channels, 32, 3, 1, 1), conv(32, 64, 3, 1, 1)])
            modules = [
                inception_a(64, 32, conv=conv),
                inception_b(256, conv=conv),
                inception_c(736, 128, conv=conv),
                inception_d(768, conv=conv),
                inception_e(1280, conv=conv),
            ]
        self.inception = nnx.List(modules)
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.head = nnx.Linear(2048, spec.num_classes, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = run_sequence(self.inception, run_sequence(self.stem, x))
        return self.head(self.dropout(global_avg_pool(x)))


@register("googlenet")
def googlenet(
    spec: InputSpec, variant: str = "small", five_kernel: int = 3, dropout: float = 0.2, dtype: Any = None, rngs: nnx.Rngs = None
) -> GoogLeNet:
    """GoogLeNet (Inception v1); `variant: imagenet` is torchvision's 224x224 network (6.6M parameters)."""
    return GoogLeNet(spec, variant=variant, five_kernel=five_kernel, dropout=dropout, dtype=dtype, rngs=rngs)


@register("inception_v3")
def inception_v3(
    spec: InputSpec, variant: str = "small", dropout: float = 0.5, dtype: Any = None, rngs: nnx.Rngs = None
) -> InceptionV3:
    """Inception v3 of factorised modules; `variant: imagenet` is torchvision's 299x299 network (23.8M)."""
    return InceptionV3(spec, variant=variant, dropout=dropout, dtype=dtype, rngs=rngs)
