"""Compress trained jaxdl models and measure what it buys.

- `pruning`: unstructured magnitude pruning as an optax wrapper (`optimizer.pruning` in configs)
- `channels`: structured channel pruning that rebuilds a smaller NNX model
- `quantize`: qwix post-training and quantization-aware quantization, rules by module path
- `storage`: the versioned compressed checkpoint format; `loading.load_compressed` reads it back
- `pipeline`, `report`, `app`: the `jaxdl-compress` recipe runner and its Markdown/JSON report
- `plugin`: registers the compressed format, the pruning wrapper and pruned widths with the core
"""

from xai.compress.loading import load_compressed
from xai.compress.pruning import PruningSpec, Schedule, magnitude_pruning

__all__ = ["PruningSpec", "Schedule", "load_compressed", "magnitude_pruning"]
