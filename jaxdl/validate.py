"""Checks of a composed config that every app runs before it touches a run directory.

Each check turns a value that would otherwise crash deep inside numpy, optax or OmegaConf (a traceback
tens of lines long) or train something meaningless (a negative loss) into one `ConfigError` line.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from jaxdl.augment_settings import check as check_augment
from jaxdl.errors import ConfigError


def check_resolvable(cfg: DictConfig) -> None:
    """Every `${...}` in the config resolves; a literal `$` in a path is written `\\$` (Hydra's escape)."""
    try:
        OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "a value"
        raise ConfigError(
            f"{key} cannot be resolved ({str(err).splitlines()[0]}); Hydra reads '${{...}}' as an interpolation: "
            "escape a literal dollar as \\$ (e.g. data.root='photos/\\${x}')"
        ) from err


def _number(value: Any) -> float | None:
    """`value` as a float when it is a number (not a bool, not a string), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def check_seed(trainer: Any) -> None:
    seed = trainer.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ConfigError(f"trainer.seed must be a whole number from 0 to {2**32 - 1}, got {seed!r}")


def check_label_smoothing(trainer: Any) -> None:
    """Smoothing 1 or more makes the target uniform or negative: the loss goes below zero and means nothing."""
    value = _number(trainer.get("label_smoothing", 0.0))
    if value is None or not 0.0 <= value < 1.0:
        raise ConfigError(f"trainer.label_smoothing must be a number in [0, 1), got {trainer.get('label_smoothing')!r}")


def check_learning_rate(optimizer: Any) -> None:
    value = optimizer.get("learning_rate")
    number = _number(value)
    if number is None or not math.isfinite(number) or number <= 0:
        raise ConfigError(f"optimizer.learning_rate must be a positive number (e.g. 1e-3), got {value!r}")


def check_class_names(data: Any) -> None:
    """Class names are the folder names or manifest labels: text, distinct."""
    names = data.get("class_names")
    if names is None:
        return
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise ConfigError(
            f"data.class_names must be a list of names, got {OmegaConf.to_container(names) if not isinstance(names, str) else names!r}; "
            "quote numbers as names: data.class_names=\"['0','1']\""
        )
    duplicated = sorted({n for n in names if list(names).count(n) > 1})
    if duplicated:
        raise ConfigError(f"data.class_names lists {', '.join(duplicated)} more than once")


def check_settings(cfg: DictConfig) -> None:
    """The value checks for the groups this config has (an app without a trainer skips those)."""
    if cfg.get("trainer") is not None:
        if "seed" in cfg.trainer:  # jaxdl-explain's trainer group holds only cpu_devices and stall_timeout_s
            check_seed(cfg.trainer)
        check_label_smoothing(cfg.trainer)
    if cfg.get("optimizer") is not None and "learning_rate" in cfg.optimizer:
        check_learning_rate(cfg.optimizer)
    if cfg.get("data") is not None:
        check_class_names(cfg.data)
        check_augment(cfg.data.get("augment"))


def check_output_dir(path: str | Path, key: str = "hydra.run.dir") -> None:
    """`path` is a directory this process can create and write in (Hydra's own mkdir is a traceback)."""
    path = Path(path).expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{key}={path} is a file, not a directory; pass a new or existing directory")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{key}={path} cannot be created: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK) or _read_only_fs(existing) or _pseudo_fs(existing):
        raise ConfigError(f"{key}={path} cannot be created: {existing} is not writable; pass a writable directory")


def _read_only_fs(path: Path) -> bool:
    return bool(os.statvfs(path).f_flag & os.ST_RDONLY)


def _pseudo_fs(path: Path) -> bool:
    """/proc and /sys accept no new directories, even from root (os.access says yes there)."""
    return path.resolve().parts[1:2] in (("proc",), ("sys",))
