"""AlexNet (Krizhevsky et al. 2012) in torchvision's single-GPU form, plus a small-input variant."""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx

from jaxdl.models.layers import Classifier, ConvBN, Pool, adaptive_avg_pool, check_variant, run_sequence
from jaxdl.models.registry import InputSpec, register


class AlexNet(nnx.Module):
    """Five convolutions (`features`) and three dense layers (`classifier`).

    `imagenet`: 11x11/4, 5x5, 3x3 convs with 3x3/2 max pools, pooled to 6x6, dense 4096
    (61,100,840 parameters for 1000 classes, as torchvision). `small`: the same widths
    with 3x3 convs and 2x2 pools for 28-32 pixel inputs, pooled to 4x4.
    """

    def __init__(
        self,
        spec: InputSpec,
        *,
        variant: str = "small",
        hidden: int | None = None,
        dropout: float = 0.5,
        dtype: Any = None,
        rngs: nnx.Rngs,
    ):
        check_variant(variant)
        conv = lambda cin, cout, k, s=1, p=0: ConvBN(cin, cout, k, s, p, dtype=dtype, rngs=rngs)
        if variant == "imagenet":
            first, pool, self.pool_size = conv(spec.channels, 64, 11, 4, 2), lambda: Pool(3, 2), 6
            second = conv(64, 192, 5, 1, 2)
            hidden = hidden or 4096
        else:
            first, pool, self.pool_size = conv(spec.channels, 64, 3, 1, 1), lambda: Pool(2, 2), 4
            second = conv(64, 192, 3, 1, 1)
            hidden = hidden or 1024
        self.features = nnx.List(
            [
                first,
                pool(),
                second,
                pool(),
                conv(192, 384, 3, 1, 1),
                conv(384, 256, 3, 1, 1),
                conv(256, 256, 3, 1, 1),
                pool(),
            ]
        )
        self.classifier = Classifier((256 * self.pool_size**2, hidden, hidden, spec.num_classes), dropout, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = adaptive_avg_pool(run_sequence(self.features, x), self.pool_size)
        return self.classifier(x)


@register("alexnet")
def alexnet(
    spec: InputSpec,
    variant: str = "small",
    hidden: int | None = None,
    dropout: float = 0.5,
    dtype: Any = None,
    rngs: nnx.Rngs = None,
) -> AlexNet:
    """AlexNet; `variant: imagenet` is torchvision's (224x224, 61.1M parameters), `small` is for 28-32 px."""
    return AlexNet(spec, variant=variant, hidden=hidden, dropout=dropout, dtype=dtype, rngs=rngs)
