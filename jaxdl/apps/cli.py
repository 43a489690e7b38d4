"""`key=value` command lines for the small tools (sampling, feature extraction) that need no Hydra run directory."""

from __future__ import annotations

import dataclasses
from typing import Sequence, TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from jaxdl.errors import ConfigError

T = TypeVar("T")


def parse_options(options_type: type[T], argv: Sequence[str]) -> T:
    """`options_type` (a dataclass) filled from `key=value` arguments, with one-line errors for bad ones."""
    fields = [f.name for f in dataclasses.fields(options_type)]
    bad = [arg for arg in argv if "=" not in arg]
    if bad:
        raise ConfigError(f"arguments are key=value pairs, got {bad[0]!r}; keys: {', '.join(fields)}")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(options_type), OmegaConf.from_dotlist(list(argv)))
        missing = sorted(OmegaConf.missing_keys(merged))
        if missing:
            raise ConfigError(f"missing required argument(s) {', '.join(f'{k}=...' for k in missing)}")
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except OmegaConfBaseException as err:
        raise ConfigError(f"{str(err).splitlines()[0]}; keys: {', '.join(fields)}") from err
