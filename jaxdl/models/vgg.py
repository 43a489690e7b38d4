"""VGG-11/16/19 (Simonyan & Zisserman 2014), with optional batch norm, ImageNet and small-input variants."""

from __future__ import annotations

from typing import Any, Sequence

import jax
from flax import nnx

from jaxdl.models.layers import Classifier, ConvBN, Pool, adaptive_avg_pool, check_variant, run_sequence
from jaxdl.models.registry import InputSpec, register

# Conv widths per configuration; "M" is a 2x2 max pool (the paper's configurations A, D and E).
CONFIGS: dict[int, tuple[int | str, ...]] = {
    11: (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    16: (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    19: (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"),
}


class VGG(nnx.Module):
    """3x3 conv stacks with five max pools (`features`) and a dense head (`classifier`).

    `imagenet`: pooled to 7x7 and dense 4096-4096 (VGG-16: 138,357,544 parameters).
    `small`: a 32x32 input ends at 1x1x512 and the head is dense 512 (the common CIFAR VGG).
    """

    def __init__(
        self,
        spec: InputSpec,
        config: Sequence[int | str],
        *,
        variant: str = "small",
        batch_norm: bool = False,
        hidden: int | None = None,
        dropout: float = 0.5,
        dtype: Any = None,
        rngs: nnx.Rngs,
    ):
        check_variant(variant)
        layers, cin = [], spec.channels
        for item in config:
            if item == "M":
                layers.append(Pool(2, 2))
            else:
                layers.append(ConvBN(cin, int(item), 3, 1, 1, norm=batch_norm, bias=True, dtype=dtype, rngs=rngs))
                cin = int(item)
        self.features = nnx.List(layers)
        self.pool_size = 7 if variant == "imagenet" else 1
        hidden = hidden or (4096 if variant == "imagenet" else 512)
        self.classifier = Classifier((cin * self.pool_size**2, hidden, hidden, spec.num_classes), dropout, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = adaptive_avg_pool(run_sequence(self.features, x), self.pool_size)
        return self.classifier(x)


def _factory(depth: int):
    def build(
        spec: InputSpec,
        variant: str = "small",
        batch_norm: bool = False,
        hidden: int | None = None,
        dropout: float = 0.5,
        dtype: Any = None,
        rngs: nnx.Rngs = None,
    ) -> VGG:
        return VGG(
            spec, CONFIGS[depth], variant=variant, batch_norm=batch_norm, hidden=hidden, dropout=dropout, dtype=dtype, rngs=rngs
        )

    build.__doc__ = f"VGG-{depth}; `batch_norm: true` for VGG-{depth}-BN, `variant: imagenet` for 224x224."
    return build


for _depth in CONFIGS:
    register(f"vgg{_depth}")(_factory(_depth))
