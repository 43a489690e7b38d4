"""Explain and compress trained jaxdl models."""

# Before anything imports JAX: in a `jaxdl-explain` / `jaxdl-compress` process (and only there, see
# jaxdl/interrupt.py) Ctrl-C is one line and exit 130 at any moment of start-up.
from jaxdl.interrupt import INSTALLED  # noqa: E402,F401
