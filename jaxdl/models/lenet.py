"""LeNet-5: the classic 1998 network and the common modern variant (20/50/500)."""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx

from jaxdl.models.registry import InputSpec, register


def _after_convs(size: int) -> int:
    """Spatial size after two (5x5 valid conv, 2x2 pool) stages."""
    return ((size - 4) // 2 - 4) // 2


class LeNet5(nnx.Module):
    """Two conv+pool stages and three dense layers.

    `classic` follows LeCun et al. 1998 (6/16 filters, tanh, 120/84 units, 32x32
    input, average pooling); the modern variant (20/50 filters, ReLU, max pooling,
    dense 500) is the Caffe/Keras LeNet most papers mean today.
    """

    def __init__(
        self,
        spec: InputSpec,
        *,
        filters: tuple[int, int] = (20, 50),
        hidden: tuple[int, ...] = (500,),
        activation: str = "relu",
        pooling: str = "max",
        dropout: float = 0.0,
        dtype: Any = None,
        rngs: nnx.Rngs,
    ):
        conv = lambda cin, cout: nnx.Conv(cin, cout, (5, 5), padding="VALID", dtype=dtype, rngs=rngs)
        self.conv1 = conv(spec.channels, filters[0])
        self.conv2 = conv(filters[0], filters[1])
        flat = _after_convs(spec.size[0]) * _after_convs(spec.size[1]) * filters[1]
        widths = (flat, *hidden)
        self.hidden = nnx.List([nnx.Linear(a, b, dtype=dtype, rngs=rngs) for a, b in zip(widths, widths[1:])])
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.head = nnx.Linear(widths[-1], spec.num_classes, dtype=dtype, rngs=rngs)
        self.activation = getattr(jax.nn, activation)
        self.pool = nnx.max_pool if pooling == "max" else nnx.avg_pool

    def features(self, x: jax.Array) -> jax.Array:
        x = self.pool(self.activation(self.conv1(x)), (2, 2), (2, 2))
        x = self.pool(self.activation(self.conv2(x)), (2, 2), (2, 2))
        return x

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.features(x).reshape(x.shape[0], -1)
        for layer in self.hidden:
            x = self.dropout(self.activation(layer(x)))
        return self.head(x)


@register("lenet5")
def lenet5(spec: InputSpec, dropout: float = 0.0, width: float = 1.0, dtype: Any = None, rngs: nnx.Rngs = None) -> LeNet5:
    """Modern LeNet-5: conv 20 5x5, pool, conv 50 5x5, pool, dense 500, dense classes; `width` scales all three."""
    filters = (max(1, round(20 * width)), max(1, round(50 * width)))
    return LeNet5(
        spec,
        filters=filters,
        hidden=(max(1, round(500 * width)),),
        activation="relu",
        pooling="max",
        dropout=dropout,
        dtype=dtype,
        rngs=rngs,
    )


@register("lenet5_classic")
def lenet5_classic(spec: InputSpec, dropout: float = 0.0, dtype: Any = None, rngs: nnx.Rngs = None) -> LeNet5:
    """LeCun et al. 1998: conv 6, avg-pool, conv 16, avg-pool, dense 120, dense 84, tanh, 32x32 input."""
    return LeNet5(
        spec, filters=(6, 16), hidden=(120, 84), activation="tanh", pooling="avg", dropout=dropout, dtype=dtype, rngs=rngs
    )
