"""Occlusion sensitivity (Zeiler & Fergus 2014), as MATLAB's `occlusionSensitivity`:
a square patch (`mask_size`, `stride`, `mask_value`: a number or "auto" for the image's
channel means; a signal's "auto" is 0, the gradient methods' baseline) slides over the image (over a (1, T) signal: a window of time steps); a pixel's value is the mean drop of the target's
score over the patches that cover it. Every patch of every image is one jitted batch.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from xai.explain.inputs import ExplainError, check_targets
from xai.explain.probe import Preprocess, Probe, map_chunks, resolve_targets


def patch_masks(height: int, width: int, size: int | tuple[int, int], stride: int | tuple[int, int]) -> np.ndarray:
    """(P, H, W) boolean patches at every stride, clipped at the image border (MATLAB's MaskClipping)."""
    sh, sw = (size, size) if isinstance(size, int) else size
    th, tw = (stride, stride) if isinstance(stride, int) else stride
    if sh < 1 or sw < 1 or th < 1 or tw < 1:
        raise ExplainError(f"occlusion mask_size and stride must be positive, got {size} and {stride}")
    masks = []
    for y in range(-(sh // 2), height - sh // 2, th):
        for x in range(-(sw // 2), width - sw // 2, tw):
            m = np.zeros((height, width), bool)
            m[max(y, 0) : y + sh, max(x, 0) : x + sw] = True
            masks.append(m)
    return np.stack(masks)


class Occlusion:
    """(B, H, W) occlusion maps: positive where hiding a pixel lowers the target's score."""

    def __init__(
        self,
        model: nnx.Module,
        *,
        preprocess: Preprocess | None = None,
        mask_size: int | None = None,
        stride: int | None = None,
        mask_value: float | str = "auto",
        score: str = "softmax",
        batch_size: int = 1024,
    ):
        if mask_value != "auto" and not isinstance(mask_value, (int, float)):
            raise ExplainError(f"occlusion mask_value must be 'auto' (the image's channel means) or a number, got {mask_value!r}")
        self.probe = Probe(model, (), preprocess)
        self.mask_size, self.stride, self.mask_value, self.score = mask_size, stride, mask_value, score
        self.batch_size = batch_size
        self._jitted = jax.jit(self._maps)

    def __call__(self, images: Any, targets: Any = None) -> jax.Array:
        images = self.probe.check(images)
        targets = check_targets(targets, len(images), self.probe.num_classes)
        h, w = images.shape[1:3]
        # MATLAB's default: a fifth of the image; a (1, T) signal: windows of a fifth of its length
        size = self.mask_size or max(1, round(0.2 * (w if h == 1 else min(h, w))))
        masks = patch_masks(h, w, size, self.stride or max(1, size // 2))
        return self._jitted(self.probe.state, images, targets, jnp.asarray(masks))

    def _scores(self, state, images):
        logits = self.probe.fn(state, images, None)[0]
        return jax.nn.softmax(logits) if self.score == "softmax" else logits

    def _maps(self, state, images, targets, masks):
        unoccluded = self._scores(state, images)
        targets = resolve_targets(targets, unoccluded)
        base = jnp.take_along_axis(unoccluded, targets[:, None], 1)[:, 0]
        fill = (
            images.mean(axis=(1, 2), keepdims=True)
            if self.mask_value == "auto" and images.shape[1] > 1
            else jnp.full_like(images[:, :1, :1], 0.0 if self.mask_value == "auto" else float(self.mask_value))
        )
        b, p = len(images), len(masks)

        def occluded_scores(state, args):
            image, patch = args
            hidden = jnp.where(masks[patch][..., None], fill[image], images[image])
            return jnp.take_along_axis(self._scores(state, hidden), targets[image][:, None], 1)[:, 0]

        pairs = (jnp.repeat(jnp.arange(b), p), jnp.tile(jnp.arange(p), b))
        scores = map_chunks(occluded_scores, state, pairs, self.batch_size, self.probe.devices).reshape(b, p)
        drop = base[:, None] - scores
        coverage = jnp.maximum(masks.sum(0), 1)
        return jnp.einsum("bp,phw->bhw", drop, masks.astype(drop.dtype)) / coverage
