"""The checked settings of `data.augment.randaugment` and `data.augment.random_erasing` (no JAX: apps check them
before anything is imported or written)."""

from __future__ import annotations

from typing import Any, Mapping

from jaxdl.errors import ConfigError

MAX_MAGNITUDE = 10.0  # RandAugment's m: the paper's scale (timm's `_LEVEL_DENOM`)
ERASE_VALUES = ("random", "zero")


def _number(value: Any, key: str) -> float:
    try:
        return float(value or 0.0)
    except (TypeError, ValueError):
        raise ConfigError(f"data.augment.{key} must be a number, got {value!r}") from None


def _pair(value: Any, name: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"data.augment.random_erasing.{name} must be [low, high], got {value!r}") from None
    if not 0 < lo <= hi:
        raise ConfigError(f"data.augment.random_erasing.{name} must be [low, high] with 0 < low <= high, got {list(value)}")
    return lo, hi


def erasing_settings(cfg: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The checked `random_erasing` settings, or None when off (p = 0)."""
    cfg = cfg or {}
    p = _number(cfg.get("p"), "random_erasing.p")
    if not 0 <= p <= 1:
        raise ConfigError(f"data.augment.random_erasing.p must be a probability in [0, 1], got {p}")
    area = _pair(cfg.get("area", (0.02, 1 / 3)), "area")
    if area[1] > 1:
        raise ConfigError(f"data.augment.random_erasing.area must lie in (0, 1], got {list(area)}")
    value = str(cfg.get("value", "random"))
    if value not in ERASE_VALUES:
        raise ConfigError(f"data.augment.random_erasing.value must be one of {', '.join(ERASE_VALUES)}, got {value!r}")
    if p == 0:
        return None
    return {"p": p, "area": area, "aspect": _pair(cfg.get("aspect", (0.3, 1 / 0.3)), "aspect"), "value": value}


def randaugment_settings(cfg: Mapping[str, Any] | None, channels: int | None = None) -> tuple[int, float] | None:
    """The checked (n, m) of `randaugment`, or None when off (n = 0); `channels` None: not known yet."""
    cfg = cfg or {}
    n, m = cfg.get("n") or 0, _number(cfg.get("m"), "randaugment.m")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ConfigError(f"data.augment.randaugment.n must be a whole number of ops >= 0, got {n!r}")
    if not 0 <= m <= MAX_MAGNITUDE:
        raise ConfigError(f"data.augment.randaugment.m must be between 0 and {MAX_MAGNITUDE:g} (the paper's scale), got {m}")
    if n and channels is not None and channels not in (1, 3):
        raise ConfigError(f"data.augment.randaugment needs grey or RGB images (1 or 3 channels); these have {channels}")
    return (n, m) if n else None


def check(augment: Mapping[str, Any] | None, channels: int | None = None) -> None:
    """Refuse bad `randaugment` / `random_erasing` settings (`validate.check_settings` runs this before a run writes
    anything; the trainer again once the images' channels are known)."""
    randaugment_settings((augment or {}).get("randaugment"), channels)
    erasing_settings((augment or {}).get("random_erasing"))
