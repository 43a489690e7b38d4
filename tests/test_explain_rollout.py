"""Attention rollout equals a direct NumPy transcription of Abnar & Zuidema (2020) on a zoo ViT's own weights."""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx

from jaxdl.models.registry import InputSpec
from jaxdl.models.transformer import vit
from xai.explain.methods import build_method
from xai.explain.rollout import attention_rollout


def rollout_as_published(attentions: list[np.ndarray]) -> np.ndarray:
    """Heads averaged, A' = (A + I) / 2 row-normalised, multiplied from the first block up; the class token's row."""
    total = None
    for a in attentions:
        a = a.astype(np.float64).mean(1)
        a = 0.5 * a + 0.5 * np.eye(a.shape[-1])
        a = a / a.sum(-1, keepdims=True)
        total = a if total is None else a @ total
    return total[:, 0, 1:]


def test_attention_rollout_equals_the_papers_formula_on_a_vit():
    model = vit(InputSpec((16, 16), 3, 5), patch=4, dim=16, depth=3, heads=2, mlp_dim=32, rngs=nnx.Rngs(0))
    model.eval()
    images = np.random.default_rng(0).uniform(size=(2, 16, 16, 3)).astype(np.float32)
    explainer = build_method("attention_rollout", model, None, {})
    maps = np.asarray(explainer(images))
    reference = rollout_as_published([np.asarray(w) for w in model.attention_weights(images)]).reshape(2, 4, 4)
    ours = np.asarray(explainer._weights(explainer.probe.state, images))
    grid = np.asarray(attention_rollout(list(ours)))
    lo, hi = reference.min((1, 2), keepdims=True), reference.max((1, 2), keepdims=True)
    np.testing.assert_allclose(grid, (reference - lo) / (hi - lo), atol=1e-5)
    assert maps.shape == (2, 16, 16)  # the method's maps: the same grid upsampled to the image
    up = np.asarray(jax.image.resize(grid, (2, 16, 16), "bilinear"))
    lo, hi = up.min((1, 2), keepdims=True), up.max((1, 2), keepdims=True)
    np.testing.assert_allclose(maps, (up - lo) / (hi - lo), atol=1e-5)
