"""jaxdl: train, explain and compress Flax NNX models, configured with Hydra.

model = jaxdl.load_model("runs/digits-lenet5/<date>")   # any run, exported or compressed model
"""

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:  # `import jaxdl` stays light: JAX loads when a model does
    if name in ("load_model", "save_model", "LoadedModel", "ModelCard"):
        from jaxdl import artifacts

        return getattr(artifacts, name)
    raise AttributeError(f"module 'jaxdl' has no attribute {name!r}")
