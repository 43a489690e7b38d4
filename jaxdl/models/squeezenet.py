"""SqueezeNet 1.0 and 1.1 (Iandola et al. 2016): Fire modules and a convolutional classifier."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxdl.models.layers import ConvBN, Pool, check_variant, global_avg_pool, run_sequence
from jaxdl.models.registry import InputSpec, register


class Fire(nnx.Module):
    """1x1 squeeze, then 1x1 and 3x3 expand convs concatenated."""

    def __init__(self, cin: int, squeeze: int, expand1: int, expand3: int, *, dtype: Any = None, rngs: nnx.Rngs):
        self.squeeze = ConvBN(cin, squeeze, 1, dtype=dtype, rngs=rngs)
        self.expand1x1 = ConvBN(squeeze, expand1, 1, dtype=dtype, rngs=rngs)
        self.expand3x3 = ConvBN(squeeze, expand3, 3, 1, 1, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.squeeze(x)
        return jnp.concatenate([self.expand1x1(x), self.expand3x3(x)], axis=-1)


# (squeeze, expand) per Fire module; "M" is a 3x3/2 max pool (ceil mode), as in torchvision.
FIRES = {
    "1_0": (96, 7, 2, ((16, 64), (16, 64), (32, 128), "M", (32, 128), (48, 192), (48, 192), (64, 256), "M", (64, 256))),
    "1_1": (64, 3, 2, ((16, 64), (16, 64), "M", (32, 128), (32, 128), "M", (48, 192), (48, 192), (64, 256), (64, 256))),
}


class SqueezeNet(nnx.Module):
    """`features` (stem conv, pools, Fire modules) and a 1x1-conv `classifier` averaged globally.

    `imagenet`: torchvision's stems (1.0: 7x7/2 96; 1.1: 3x3/2 64), 1,248,424 / 1,235,496 parameters.
    `small`: the stem conv is 3x3 with stride 1, for 28-32 px inputs.
    """

    def __init__(
        self, spec: InputSpec, version: str, *, variant: str = "small", dropout: float = 0.5, dtype: Any = None, rngs: nnx.Rngs
    ):
        check_variant(variant)
        stem_width, kernel, stride, plan = FIRES[version]
        if variant == "small":
            kernel, stride = 3, 1
        layers = [
            ConvBN(spec.channels, stem_width, kernel, stride, kernel // 2 if variant == "small" else 0, dtype=dtype, rngs=rngs),
            Pool(3, 2, ceil_mode=True),
        ]
        cin = stem_width
        for item in plan:
            if item == "M":
                layers.append(Pool(3, 2, ceil_mode=True))
            else:
                squeeze, expand = item
                layers.append(Fire(cin, squeeze, expand, expand, dtype=dtype, rngs=rngs))
                cin = 2 * expand
        self.features = nnx.List(layers)
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.classifier = ConvBN(cin, spec.num_classes, 1, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = run_sequence(self.features, x)
        return global_avg_pool(self.classifier(self.dropout(x)))


def _factory(version: str):
    def build(
        spec: InputSpec, variant: str = "small", dropout: float = 0.5, dtype: Any = None, rngs: nnx.Rngs = None
    ) -> SqueezeNet:
        return SqueezeNet(spec, version, variant=variant, dropout=dropout, dtype=dtype, rngs=rngs)

    build.__doc__ = f"SqueezeNet {version.replace('_', '.')}; `variant: imagenet` for 224x224."
    return build


for _version in FIRES:
    register(f"squeezenet{_version}")(_factory(_version))
