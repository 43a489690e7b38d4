"""jaxdl: train, explain and compress Flax NNX models, configured with Hydra."""

__version__ = "0.1.0"
