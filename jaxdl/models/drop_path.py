"""Stochastic depth (Huang et al. 2016) with timm's `drop_path` semantics.

In training each sample's residual branch is zeroed with probability `rate` and kept ones are scaled
by 1 / (1 - rate); at evaluation it is the identity. Block i of n gets `rate * i / (n - 1)`, the
linear rule of timm's ViT and ResNet, so the first block is never dropped.
"""

from __future__ import annotations

from flax import nnx

from jaxdl.errors import ConfigError


def drop_path(rate: float, ndim: int, *, rngs: nnx.Rngs) -> nnx.Dropout | None:
    """A per-sample residual-branch dropout for `ndim`-d activations (batch first), None when `rate` is 0.

    It is `nnx.Dropout` with its mask broadcast over every non-batch axis: one Bernoulli draw per sample,
    the same rescaling and the same train/eval switch as dropout."""
    if not 0.0 <= rate < 1.0:
        raise ConfigError(f"model.drop_path must be in [0, 1), got {rate}")
    return nnx.Dropout(rate, broadcast_dims=tuple(range(1, ndim)), rngs=rngs) if rate else None


def block_rates(rate: float, blocks: int) -> list[float]:
    """timm's linear stochastic-depth rule: 0 for the first block up to `rate` for the last."""
    return [rate * i / max(blocks - 1, 1) for i in range(blocks)]
