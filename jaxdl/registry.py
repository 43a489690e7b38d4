"""Name -> factory registries: models, data sources, optimisers and extension points are looked up by name.

A name not found is looked for once more after loading the installed plugins (jaxdl/plugins.py)."""

from __future__ import annotations

import inspect

from typing import Callable, Generic, TypeVar

from jaxdl.errors import ConfigError, unknown_name
from jaxdl.plugins import load_plugins

T = TypeVar("T", bound=Callable)


class Registry(Generic[T]):
    """A named collection of factories with a helpful error for unknown names."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(factory: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._entries[name] = factory
            return factory

        return add

    def get(self, name: str) -> T:
        if name not in self:
            raise unknown_name(self.kind, name, self.names())
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        if name not in self._entries:
            load_plugins()  # a plugin (e.g. xai.compress) may provide it
        return name in self._entries


def call_with_options(factory: Callable, options: dict, what: str, **fixed):
    """Call `factory(**fixed, **options)`, turning an unknown option into a one-line ConfigError."""
    params = inspect.signature(factory).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = [k for k in options if k not in params and not takes_any]
    if unknown:
        valid = [k for k in params if k not in fixed and params[k].kind is not inspect.Parameter.VAR_KEYWORD]
        raise ConfigError(f"{what} has no option {', '.join(map(repr, unknown))}; valid options: {', '.join(valid)}")
    return factory(**fixed, **options)
