"""Model zoo. Adding a model is one module here that uses `@register` plus one `conf/model/NAME.yaml`."""

import importlib
import pkgutil

from jaxdl.models.registry import ADAPTERS, MODELS, InputSpec, build, build_unfilled, input_size, register

# Import every module of the package so that its `@register` decorators run.
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["ADAPTERS", "MODELS", "InputSpec", "build", "build_unfilled", "input_size", "register"]
