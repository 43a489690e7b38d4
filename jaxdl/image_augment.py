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

from jaxdl.errors import ConfigError
from jaxdl.randaugment import MAX_MAGNITUDE, rand_augment
from jaxdl.random_erasing import VALUES, erase

Augment = Callable[[jax.Array, jax.Array], jax.Array]  # (key, normalised NHWC batch) -> batch


def _pair(value: Any, name: str) -> tuple[float, float]:
    lo, hi = (float(v) for v in value)
    if not 0 < lo <= hi:
        raise ConfigError(f"data.augment.random_erasing.{name} must be [low, high] with 0 < low <= high, got {list(value)}")
    return lo, hi


def erasing_settings(cfg: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The checked `random_erasing` settings, or None when off (p = 0)."""
    cfg = cfg or {}
    p = float(cfg.get("p") or 0.0)
    if not 0 <= p <= 1:
        raise ConfigError(f"data.augment.random_erasing.p must be a probability in [0, 1], got {p}")
    area = _pair(cfg.get("area", (0.02, 1 / 3)), "area")
    if area[1] > 1:
        raise ConfigError(f"data.augment.random_erasing.area must lie in (0, 1], got {list(area)}")
    value = str(cfg.get("value", "random"))
    if value not in VALUES:
        raise ConfigError(f"data.augment.random_erasing.value must be one of {', '.join(VALUES)}, got {value!r}")
    if p == 0:
        return None
    return {"p": p, "area": area, "aspect": _pair(cfg.get("aspect", (0.3, 1 / 0.3)), "aspect"), "value": value}


def randaugment_settings(cfg: Mapping[str, Any] | None, channels: int) -> tuple[int, float] | None:
    """The checked (n, m) of `randaugment`, or None when off (n = 0)."""
    cfg = cfg or {}
    n, m = cfg.get("n") or 0, float(cfg.get("m") or 0.0)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ConfigError(f"data.augment.randaugment.n must be a whole number of ops >= 0, got {n!r}")
    if not 0 <= m <= MAX_MAGNITUDE:
        raise ConfigError(f"data.augment.randaugment.m must be between 0 and {MAX_MAGNITUDE:g} (the paper's scale), got {m}")
    if n and channels not in (1, 3):
        raise ConfigError(f"data.augment.randaugment needs grey or RGB images (1 or 3 channels); these have {channels}")
    return (n, m) if n else None


def check(augment: Mapping[str, Any] | None, channels: int) -> None:
    """Refuse bad `randaugment` / `random_erasing` settings before a run writes anything."""
    randaugment_settings((augment or {}).get("randaugment"), channels)
    erasing_settings((augment or {}).get("random_erasing"))


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
