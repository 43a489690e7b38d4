"""GPU decoding with NVIDIA DALI (`data.decoder=dali`, extra `dali`): where it cannot run, one line says why."""

from __future__ import annotations

from jaxdl.errors import ConfigError

EXTRA_HINT = "pip install 'jaxdl[dali]' on a machine with an NVIDIA GPU; data.decoder=auto decodes on the CPU"


def require() -> None:
    """Refuse `data.decoder=dali` where DALI is not installed or no NVIDIA GPU is visible to JAX."""
    try:
        import nvidia.dali  # noqa: F401
    except ImportError:
        raise ConfigError(f"data.decoder=dali needs NVIDIA DALI, which is not installed: {EXTRA_HINT}") from None
    import jax

    if not any(device.platform == "gpu" for device in jax.devices()):
        raise ConfigError(f"data.decoder=dali decodes on an NVIDIA GPU and this machine has none: {EXTRA_HINT}")
