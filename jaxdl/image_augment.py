"""Per-image augmentation in the jitted train step: `data.augment.randaugment` then `data.augment.random_erasing`.

Both act on the normalised batch the step's `Preprocess` made (after its crops and flips), so images streamed from
input workers get them too. RandAugment un-normalises to whole uint8 levels, applies its ops and normalises again;
random erasing works in normalised units (timm's order: RandAugment before `Normalize`, `RandomErasing` after).
Each image has its own key split from the step's key (a function of the seed and the step), so a resumed run
augments exactly as an uninterrupted one.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp

from jaxdl.augment_settings import erasing_settings, randaugment_settings
from jaxdl.randaugment import rand_augment
from jaxdl.random_erasing import erase

Augment = Callable[[jax.Array, jax.Array], jax.Array]  # (key, normalised NHWC batch) -> batch


def image_augment(
    augment: Mapping[str, Any] | None, mean: Sequence[float], std: Sequence[float], channels: int
) -> Augment | None:
    """`(key, x) -> x` applying RandAugment and random erasing to each image of a normalised batch, or None."""
    augment = augment or {}
    ra = randaugment_settings(augment.get("randaugment"), channels)
    erasing = erasing_settings(augment.get("random_erasing"))
    if ra is None and erasing is None:
        return None
    mean_, std_ = jnp.asarray(mean, jnp.float32), jnp.asarray(std, jnp.float32)

    def one(key: jax.Array, img: jax.Array) -> jax.Array:
        ra_key, erase_key = jax.random.split(key)
        if ra is not None:
            levels = jnp.clip(jnp.round((img * std_ + mean_) * 255.0), 0.0, 255.0)
            levels = rand_augment(ra_key, levels, *ra)[0]
            img = ((levels / 255.0 - mean_) / std_).astype(img.dtype)
        if erasing is not None:
            img = erase(erase_key, img, **erasing)
        return img

    def apply(key: jax.Array, x: jax.Array) -> jax.Array:
        return jax.vmap(one)(jax.random.split(key, x.shape[0]), x)

    return apply
