"""Attention rollout (Abnar & Zuidema 2020) for token models such as ViT.

Takes the attention weights themselves, (B, heads, T, T) per block in forward order,
e.g. sown by the model or read with `Probe` from each block's attention module.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from xai.explain.cam import scale_maps, token_grid, upsample
from xai.explain.inputs import ExplainError
from xai.explain.probe import Preprocess, Probe


@jax.jit
def _rollout(attentions: jax.Array, residual: float) -> jax.Array:
    fused = attentions.mean(axis=2)  # (L, B, T, T): heads averaged
    eye = jnp.eye(fused.shape[-1], dtype=fused.dtype)
    fused = residual * eye + (1 - residual) * fused  # the residual connection
    fused = fused / fused.sum(-1, keepdims=True)

    def step(total, layer):
        return layer @ total, None

    total, _ = jax.lax.scan(step, jnp.broadcast_to(eye, fused.shape[1:]), fused)
    return total


def attention_rollout(
    attentions: Sequence[jax.Array], prefix_tokens: int = 1, residual: float = 0.5, grid: tuple[int, int] | None = None
) -> jax.Array:
    """(B, h, w) maps in [0, 1]: how much the class token attends to each patch through all blocks."""
    shapes = {tuple(a.shape) for a in attentions}
    if len(shapes) != 1 or len(next(iter(shapes))) != 4:
        raise ExplainError(f"attention rollout needs (B, heads, T, T) weights of one shape per block, got {sorted(shapes)}")
    total = _rollout(jnp.stack(attentions).astype(jnp.float32), residual)
    relevance = total[:, 0, :, None]  # the class token's row, as (B, T, 1) tokens
    h, w = grid or (None, None)
    return scale_maps(token_grid(prefix_tokens, h, w)(relevance)[..., 0])


class AttentionRollout:
    """Attention rollout of a token model with `attention_weights(x)` (the zoo's ViT, imported ViT-B/16) as a
    map explainer: (B, H, W) maps upsampled from the patch grid. The class-token row does not depend on the
    target class (the paper's method is class-agnostic); weights are recorded only for this call."""

    def __init__(self, model: nnx.Module, *, preprocess: Preprocess | None = None, residual: float = 0.5):
        if not callable(getattr(model, "attention_weights", None)):
            raise ExplainError(
                f"attention_rollout needs a token model with attention_weights(x); {type(model).__name__} has none"
            )
        self.probe = Probe(model, (), preprocess)
        self.residual = residual
        self._weights = jax.jit(self._attention)

    def _attention(self, state: nnx.State, images: jax.Array) -> list[jax.Array]:
        model = nnx.merge(self.probe.fn.graphdef, state)
        x = images if self.probe.fn.preprocess is None else self.probe.fn.preprocess(images)
        return model.attention_weights(x)

    def __call__(self, images: Any, targets: Any = None) -> jax.Array:
        images = self.probe.check(images)
        maps = attention_rollout(self._weights(self.probe.state, images), prefix_tokens=1, residual=self.residual)
        return scale_maps(upsample(maps, images.shape[1:3]))
