"""What `xai.compress` adds to the core, registered when the core loads its plugins (pyproject entry point).

- the `compressed` model format, so `jaxdl.load_model` and `trainer.init_from` read compressed checkpoints;
- the `pruning` optimizer wrapper (`optimizer.pruning={sparsity: 0.9}` in any training run);
- the `channels` model key (the widths of a structurally pruned model, rebuilt smaller);
- int8 ONNX export of quantized checkpoints (`jaxdl-export format=onnx`).
"""

from __future__ import annotations

from jaxdl.artifacts import FORMATS, ArtifactFormat
from jaxdl.models import ADAPTERS
from jaxdl.optim import WRAPPERS
from xai.compress import export_int8  # noqa: F401 - registers the int8 ONNX exporter
from xai.compress.channels import shrink_to
from xai.compress.loading import load_compressed
from xai.compress.pruning import magnitude_pruning, spec_from_config
from xai.compress.storage import find_compressed

FORMATS.register("compressed")(ArtifactFormat(lambda path: find_compressed(path) is not None, load_compressed))
WRAPPERS.register("pruning")(
    lambda tx, options, steps_per_epoch, epochs: magnitude_pruning(tx, spec_from_config(options, steps_per_epoch, epochs))
)
ADAPTERS.register("channels")(shrink_to)
