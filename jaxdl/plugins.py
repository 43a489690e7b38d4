"""Extension points: packages plug into the core's registries without the core importing them.

A plugin is a module named under the `jaxdl.plugins` entry-point group of its
distribution (jaxdl's own `xai.compress` is one: see pyproject.toml). Importing
the module registers its entries, e.g. a checkpoint-format loader or an optimizer
wrapper. Registries load the plugins the first time a name is not found, so a
core that never imports `xai` still finds `optimizer.pruning` or a compressed
checkpoint.
"""

from __future__ import annotations

import importlib
import logging
from importlib.metadata import entry_points

log = logging.getLogger("jaxdl")
GROUP = "jaxdl.plugins"
_loaded = False


def load_plugins() -> None:
    """Import every installed plugin module once."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for entry in entry_points(group=GROUP):
        try:
            importlib.import_module(entry.value)
        except ImportError as err:  # a broken optional plugin must not take the core down
            log.warning("jaxdl plugin '%s' (%s) could not be loaded: %s", entry.name, entry.value, err)
