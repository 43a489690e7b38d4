"""The exact `jaxdl-explain ...` command that reproduces a report: every setting that differs from
the app's defaults as a Hydra override, with the checkpoint step and the resolved target layer
pinned, so a later change of "best" or of the default-layer rule cannot change the result."""

from __future__ import annotations

import re
import shlex
from typing import Any

from omegaconf import DictConfig, OmegaConf

from jaxdl.config import CONF_DIR

_PLAIN = re.compile(r"[A-Za-z_/.~][A-Za-z0-9_./:+~-]*")
_RESERVED = {"true", "false", "null", "nan", "inf"}


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def override_value(value: Any) -> str:
    """`value` in Hydra's override grammar: null, true, 3, 0.5, name, 'quoted(string)', [a,b], {k:v}."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(override_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{override_value(v)}" for k, v in value.items()) + "}"
    text = str(value)
    if _PLAIN.fullmatch(text) and text.lower() not in _RESERVED and not _is_number(text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _leaves(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys of every non-dict value (lists are values); an empty dict is a value too."""
    if isinstance(tree, dict) and tree:
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(_leaves(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: tree}


def reproduce_command(cfg: DictConfig, target_layer: str | list[str], checkpoint_step: int | None) -> str:
    """A shell line that re-runs this explanation with the same run, checkpoint, layer and settings."""
    explain = OmegaConf.to_container(cfg.explain, resolve=True)
    explain["target_layer"] = target_layer
    defaults = _leaves(OmegaConf.to_container(OmegaConf.load(CONF_DIR / "explain" / "default.yaml")))
    checkpoint = checkpoint_step if checkpoint_step is not None else cfg.which
    args = [f"run_dir={override_value(str(cfg.run_dir))}", f"which={override_value(checkpoint)}"]
    for key, value in _leaves(explain).items():
        if key not in defaults:
            args.append(f"+explain.{key}={override_value(value)}")
        elif defaults[key] != value:
            args.append(f"explain.{key}={override_value(value)}")
    return "jaxdl-explain " + " ".join(shlex.quote(a) for a in args)
