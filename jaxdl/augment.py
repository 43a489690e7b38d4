"""Mixup (Zhang et al. 2018) and CutMix (Yun et al. 2019) inside the jitted train step, timm's semantics.

One λ ~ Beta(α, α) per batch, drawn from the step's RNG key (a function of the seed and the step
number, so a resumed run mixes exactly as an uninterrupted one); each image is mixed with its mirror in
the batch (`x[::-1]`). Mixup: x = λ·x1 + (1-λ)·x2. CutMix: a box of area ≈ (1-λ)·H·W is pasted from
x2, and λ becomes the exact share of x1's pixels left. Targets are mixed with the same λ after label
smoothing, so the loss is cross-entropy against soft targets. With both on, each batch picks one of
the two with probability 1/2.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import optax

from jaxdl.errors import ConfigError

Mix = Callable[[jax.Array, jax.Array, jax.Array], tuple[jax.Array, jax.Array]]


def soft_targets(labels: jax.Array, num_classes: int, label_smoothing: float) -> jax.Array:
    targets = jax.nn.one_hot(labels, num_classes)
    return optax.smooth_labels(targets, label_smoothing) if label_smoothing else targets


def mixup(x: jax.Array, targets: jax.Array, lam: jax.Array) -> tuple[jax.Array, jax.Array]:
    """λ·(x, t) + (1-λ)·(x, t) of the mirrored batch."""
    mixed = lam * x + (1 - lam) * x[::-1]
    return mixed.astype(x.dtype), lam * targets + (1 - lam) * targets[::-1]


def cutmix(key: jax.Array, x: jax.Array, targets: jax.Array, lam: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Paste a box of side sqrt(1-λ) of the mirrored batch's images (centre uniform, clipped at the border,
    as timm's `rand_bbox`); the targets' weight is the share of pixels kept."""
    h, w = x.shape[1:3]
    cut = jnp.sqrt(1 - lam)
    ch, cw = (h * cut).astype(jnp.int32), (w * cut).astype(jnp.int32)
    cy, cx = jax.random.randint(key, (2,), 0, jnp.array([h, w]))
    rows, cols = jnp.arange(h)[:, None], jnp.arange(w)[None, :]
    box = (rows >= cy - ch // 2) & (rows < cy + ch // 2) & (cols >= cx - cw // 2) & (cols < cx + cw // 2)
    kept = 1 - box.mean()
    mixed = jnp.where(box[None, :, :, None], x[::-1], x)
    return mixed, kept * targets + (1 - kept) * targets[::-1]


def batch_mix(augment: Mapping[str, Any], num_classes: int, label_smoothing: float = 0.0) -> Mix | None:
    """`(key, x, labels) -> (x, soft targets)` from `data.augment.mixup` / `cutmix` (Beta α; 0 = off), or None."""
    alphas = {k: float(augment.get(k) or 0.0) for k in ("mixup", "cutmix")}
    for k, a in alphas.items():
        if a < 0:
            raise ConfigError(f"data.augment.{k} must be a Beta alpha >= 0 (0 = off), got {a}")
    if not any(alphas.values()):
        return None

    def mix(key: jax.Array, x: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
        pick, lam_key, box_key = jax.random.split(key, 3)
        targets = soft_targets(labels, num_classes, label_smoothing)
        use_cutmix = alphas["cutmix"] > 0 and (alphas["mixup"] == 0 or jax.random.bernoulli(pick))
        alpha = jnp.where(use_cutmix, alphas["cutmix"], alphas["mixup"])
        lam = jax.random.beta(lam_key, alpha, alpha).astype(jnp.float32)
        if not alphas["mixup"]:
            return cutmix(box_key, x, targets, lam)
        if not alphas["cutmix"]:
            return mixup(x, targets, lam)
        return jax.lax.cond(use_cutmix, lambda: cutmix(box_key, x, targets, lam), lambda: mixup(x, targets, lam))

    return mix
