"""Where `conf/` is, and checks on command-line overrides before Hydra sees them."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from jaxdl.errors import unknown_name

_PACKAGE = Path(__file__).resolve().parent


def _find_conf_dir() -> Path:
    """An installed wheel carries conf/ inside the package; a checkout has it beside the package."""
    for candidate in (_PACKAGE / "conf", _PACKAGE.parent / "conf"):
        if candidate.is_dir():
            return candidate
    raise RuntimeError(f"jaxdl's conf/ directory is missing next to {_PACKAGE}; reinstall jaxdl")


CONF_DIR = _find_conf_dir()

GROUPS = ("data", "model", "optimizer", "trainer", "experiment", "hparams_search", "compress", "explain", "gan", "autoencoder")


def group_options(group: str, conf_dir: Path = CONF_DIR) -> list[str]:
    """The names selectable for a config group, e.g. `model` -> ['lenet5', 'lenet5_classic']."""
    return sorted(p.stem for p in (conf_dir / group).glob("*.yaml"))


def check_group_overrides(argv: Sequence[str], conf_dir: Path = CONF_DIR) -> None:
    """Fail with one line for `model=nope` instead of Hydra's multi-line composition error."""
    for arg in argv:
        if "=" not in arg or arg.startswith(("-", "+", "~", "hydra")):
            continue
        key, value = arg.split("=", 1)
        if key not in GROUPS or not (conf_dir / key).is_dir() or value in ("null", ""):
            continue
        valid = group_options(key, conf_dir)
        for choice in value.split(","):  # multirun: model=a,b
            if choice not in valid:
                raise unknown_name(key, choice, valid)
