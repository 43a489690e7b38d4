"""Gradient-weighted attention relevance (Chefer, Gur & Wolf 2021, "Generic Attention-model Explainability"),
the widely used form of their "Transformer Interpretability Beyond Attention Visualization":

    R = I;  for each block, in forward order:  R += mean_heads(max(dy_t/dA * A, 0)) @ R

and the class token's row of R over the patch tokens is the map. Unlike attention rollout it depends on
the target class t (through the gradient of its logit). The attention weights and their gradients come
from one forward and one backward pass of the model itself (`recording()`: explicit attention, weights
sown and perturbed), so the fused kernel stays in place for everything else.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from xai.explain.cam import scale_maps, token_grid, upsample
from xai.explain.inputs import ExplainError, check_targets
from xai.explain.probe import Preprocess, Probe, resolve_targets


def relevance(attentions: jax.Array, gradients: jax.Array) -> jax.Array:
    """(B, T, T) relevance from (L, B, heads, T, T) attention weights and the target's gradients w.r.t. them."""
    cams = jnp.maximum(gradients * attentions, 0).mean(axis=2)  # (L, B, T, T)
    eye = jnp.broadcast_to(jnp.eye(cams.shape[-1], dtype=cams.dtype), cams.shape[1:])

    def step(total, cam):
        return total + cam @ total, None

    return jax.lax.scan(step, eye, cams)[0]


def token_model(model: nnx.Module, method: str) -> None:
    """Refuse, in one line, a model without the token-model interface (`recording`, `attention_weights`)."""
    if not callable(getattr(model, "recording", None)) or not callable(getattr(model, "attention_weights", None)):
        raise ExplainError(f"{method} needs a token model such as the zoo's ViT; {type(model).__name__} has no attention")


class GradientRelevance:
    """Chefer et al.'s relevance as a map explainer: (B, H, W) maps in [0, 1] upsampled from the patch grid.
    `attention_and_gradients` (one jitted pass) is exposed for checks against other implementations."""

    def __init__(self, model: nnx.Module, *, preprocess: Preprocess | None = None):
        token_model(model, "gradient_relevance")
        self.probe = Probe(model, (), preprocess)
        self._inputs = jax.jit(self.attention_and_gradients)
        self._maps = jax.jit(self.maps)

    def attention_and_gradients(self, state: nnx.State, images: jax.Array, targets: jax.Array):
        """(weights, gradients), each (L, B, heads, T, T), and the resolved targets (-1: the predicted class)."""
        graphdef, preprocess = self.probe.fn.graphdef, self.probe.fn.preprocess
        x = images if preprocess is None else preprocess(images)

        def captured(kind, init=None):
            model = nnx.merge(graphdef, state)
            with model.recording():
                return nnx.capture(model, kind, init=init)(x)

        def score(perturbations):
            logits, sown = captured(nnx.Intermediate, perturbations)
            chosen = resolve_targets(targets, jax.lax.stop_gradient(logits))
            return jnp.take_along_axis(logits, chosen[:, None], 1).sum(), (sown, chosen)

        grads, (sown, chosen) = jax.grad(score, has_aux=True)(captured(nnx.Perturbation)[1])
        blocks = range(len(sown["blocks"]))
        weights = jnp.stack([sown["blocks"][i]["attention"]["weights"][0] for i in blocks])
        gradients = jnp.stack([grads["blocks"][i]["attention"]["weights"][...] for i in blocks])
        return weights.astype(jnp.float32), gradients.astype(jnp.float32), chosen

    def maps(self, state: nnx.State, images: jax.Array, targets: jax.Array) -> jax.Array:
        weights, gradients, _ = self.attention_and_gradients(state, images, targets)
        tokens = relevance(weights, gradients)[:, 0, :, None]  # the class token's row, as (B, T, 1)
        grid = scale_maps(token_grid(1)(tokens)[..., 0])
        return scale_maps(upsample(grid, images.shape[1:3]))

    def __call__(self, images: Any, targets: Any = None) -> jax.Array:
        images = self.probe.check(images)
        return self._maps(self.probe.state, images, check_targets(targets, len(images), self.probe.num_classes))
