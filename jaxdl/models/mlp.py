"""A multilayer perceptron on flattened inputs: the baseline row of every benchmark table."""

from __future__ import annotations

from typing import Any, Sequence

import jax
from flax import nnx

from jaxdl.models.registry import InputSpec, register


class MLP(nnx.Module):
    """Flatten, `hidden` dense ReLU layers with dropout, dense `head`."""

    def __init__(
        self, spec: InputSpec, *, hidden: Sequence[int] = (256, 128), dropout: float = 0.2, dtype: Any = None, rngs: nnx.Rngs
    ):
        widths = (spec.size[0] * spec.size[1] * spec.channels, *hidden)
        self.hidden = nnx.List([nnx.Linear(a, b, dtype=dtype, rngs=rngs) for a, b in zip(widths, widths[1:])])
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.head = nnx.Linear(widths[-1], spec.num_classes, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.reshape(x.shape[0], -1)
        for layer in self.hidden:
            x = self.dropout(jax.nn.relu(layer(x)))
        return self.head(x)


@register("mlp")
def mlp(
    spec: InputSpec, hidden: Sequence[int] = (256, 128), dropout: float = 0.2, dtype: Any = None, rngs: nnx.Rngs = None
) -> MLP:
    """Dense ReLU layers of widths `hidden` on the flattened input."""
    return MLP(spec, hidden=tuple(hidden), dropout=dropout, dtype=dtype, rngs=rngs)
