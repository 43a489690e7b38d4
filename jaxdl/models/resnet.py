"""ResNet-18/34/50 (He et al. 2015) with basic and bottleneck blocks, ImageNet and small-input variants."""

from __future__ import annotations

from typing import Any, Sequence

import jax
from flax import nnx

from jaxdl.models.drop_path import block_rates, drop_path
from jaxdl.models.layers import ConvBN, Pool, check_variant, global_avg_pool, run_sequence
from jaxdl.models.registry import InputSpec, register


class BasicBlock(nnx.Module):
    """Two 3x3 convs with an identity (or 1x1 projection) shortcut."""

    expansion = 1

    def __init__(self, cin: int, width: int, stride: int, *, drop: float = 0.0, dtype: Any = None, rngs: nnx.Rngs):
        cout = width * self.expansion
        self.conv1 = ConvBN(cin, width, 3, stride, 1, norm=True, dtype=dtype, rngs=rngs)
        self.conv2 = ConvBN(width, cout, 3, 1, 1, norm=True, relu=False, dtype=dtype, rngs=rngs)
        self.shortcut = _projection(cin, cout, stride, dtype, rngs)
        self.drop_path = drop_path(drop, 4, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        identity = x if self.shortcut is None else self.shortcut(x)
        return jax.nn.relu(_dropped(self.drop_path, self.conv2(self.conv1(x))) + identity)


class Bottleneck(nnx.Module):
    """1x1 reduce, 3x3 (strided, as torchvision's ResNet v1.5), 1x1 expand by 4."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int, *, drop: float = 0.0, dtype: Any = None, rngs: nnx.Rngs):
        cout = width * self.expansion
        self.conv1 = ConvBN(cin, width, 1, norm=True, dtype=dtype, rngs=rngs)
        self.conv2 = ConvBN(width, width, 3, stride, 1, norm=True, dtype=dtype, rngs=rngs)
        self.conv3 = ConvBN(width, cout, 1, norm=True, relu=False, dtype=dtype, rngs=rngs)
        self.shortcut = _projection(cin, cout, stride, dtype, rngs)
        self.drop_path = drop_path(drop, 4, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        identity = x if self.shortcut is None else self.shortcut(x)
        return jax.nn.relu(_dropped(self.drop_path, self.conv3(self.conv2(self.conv1(x)))) + identity)


def _dropped(drop: nnx.Dropout | None, branch: jax.Array) -> jax.Array:
    return branch if drop is None else drop(branch)


def _projection(cin: int, cout: int, stride: int, dtype: Any, rngs: nnx.Rngs) -> ConvBN | None:
    if stride == 1 and cin == cout:
        return None
    return ConvBN(cin, cout, 1, stride, norm=True, relu=False, dtype=dtype, rngs=rngs)


class ResNet(nnx.Module):
    """`stem`, four `stages` of blocks (widths 64-512, stride 2 from the second), global pool, `head`.

    `imagenet`: 7x7/2 conv and 3x3/2 max pool stem (ResNet-50: 25,557,032 parameters).
    `small`: a 3x3/1 conv stem without pooling, the usual CIFAR adaptation for 28-32 px.
    """

    def __init__(
        self,
        spec: InputSpec,
        block: type,
        depths: Sequence[int],
        *,
        variant: str = "small",
        drop_path: float = 0.0,
        dtype: Any = None,
        rngs: nnx.Rngs,
    ):
        check_variant(variant)
        if variant == "imagenet":
            stem = [ConvBN(spec.channels, 64, 7, 2, 3, norm=True, dtype=dtype, rngs=rngs), Pool(3, 2, 1)]
        else:
            stem = [ConvBN(spec.channels, 64, 3, 1, 1, norm=True, dtype=dtype, rngs=rngs)]
        self.stem = nnx.List(stem)
        stages, cin, rates = [], 64, iter(block_rates(drop_path, sum(depths)))
        for i, depth in enumerate(depths):
            width = 64 * 2**i
            blocks = []
            for j in range(depth):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(block(cin, width, stride, drop=next(rates), dtype=dtype, rngs=rngs))
                cin = width * block.expansion
            stages.append(nnx.List(blocks))
        self.stages = nnx.List(stages)
        self.head = nnx.Linear(cin, spec.num_classes, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = run_sequence(self.stem, x)
        for stage in self.stages:
            x = run_sequence(stage, x)
        return self.head(global_avg_pool(x))


ARCHITECTURES = {18: (BasicBlock, (2, 2, 2, 2)), 34: (BasicBlock, (3, 4, 6, 3)), 50: (Bottleneck, (3, 4, 6, 3))}


def _factory(depth: int):
    block, depths = ARCHITECTURES[depth]

    def build(
        spec: InputSpec, variant: str = "small", drop_path: float = 0.0, dtype: Any = None, rngs: nnx.Rngs = None
    ) -> ResNet:
        return ResNet(spec, block, depths, variant=variant, drop_path=drop_path, dtype=dtype, rngs=rngs)

    build.__doc__ = (
        f"ResNet-{depth} ({block.__name__}s {depths}); `variant: imagenet` for 224x224; `drop_path`: stochastic depth."
    )
    return build


for _depth in ARCHITECTURES:
    register(f"resnet{_depth}")(_factory(_depth))
