"""The function an export writes: a pure `inputs -> outputs` of a loaded model, with its input signature.

`preprocess=include` folds the artifact's preprocessing in (uint8 NHWC pixels in, as `jaxdl.load_model`
takes them; class probabilities out), so a deployment needs nothing but the file. `preprocess=metadata`
leaves it out (normalised float32 NHWC at the model's size in, logits out) and states it in the metadata.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import jaxdl
from jaxdl.artifacts import LoadedModel

PREPROCESS_MODES = ("include", "metadata")


@dataclasses.dataclass(frozen=True)
class ExportGraph:
    loaded: LoadedModel
    fn: Callable[[jax.Array], jax.Array]  # pure and jit-able; the weights are constants of the graph
    input_shape: tuple[int, ...]  # one example, e.g. (28, 28, 1)
    input_dtype: Any
    batch: int | None  # None: a symbolic batch dimension
    preprocess: str  # include | metadata
    classifier: bool  # outputs are class scores (argmax is compared), not e.g. reconstructions

    def to_model_input(self, images: np.ndarray) -> np.ndarray:
        """What the exported file takes for these raw inputs (the preprocessing applied when it is not folded in)."""
        if self.preprocess == "include":
            return np.asarray(images, self.input_dtype)
        return np.asarray(self.loaded.preprocess(jnp.asarray(images)), np.float32)

    def metadata(self) -> dict[str, str]:
        """What a deployment must know, as string key/values (ONNX metadata props, the StableHLO side file)."""
        card = self.loaded.card
        p = card.preprocess
        return {
            "jaxdl_version": jaxdl.__version__,
            "jaxdl_card": json.dumps(card.to_json()),
            "preprocess": self.preprocess,
            "input": f"{'uint8 pixels' if self.preprocess == 'include' else 'float32 normalised'} NHWC {list(self.input_shape)}",
            "output": "probabilities" if self.classifier and self.preprocess == "include" else "raw outputs (logits)",
            "input_size": json.dumps(list(p.size)),
            "mean": json.dumps(list(p.mean)),
            "std": json.dumps(list(p.std)),
            "class_names": json.dumps(list(card.class_names)),
            "source": str(self.loaded.path),
            "step": "" if self.loaded.step is None else str(self.loaded.step),
        }


def build_graph(loaded: LoadedModel, samples: np.ndarray, batch: int | None, preprocess: str) -> ExportGraph:
    """The inference function of `loaded` in eval mode, shaped like `samples` (N, ...)."""
    classifier = _is_classifier(loaded, samples)
    include = preprocess == "include"
    if include:
        shape, dtype = samples.shape[1:], samples.dtype
    else:
        shape, dtype = (*loaded.spec.size, samples.shape[-1]), np.dtype(np.float32)
    return ExportGraph(
        loaded, inference_fn(loaded, include, classifier), tuple(shape), np.dtype(dtype), batch, preprocess, classifier
    )


def inference_fn(loaded: LoadedModel, include: bool, classifier: bool) -> Callable[[jax.Array], jax.Array]:
    """A pure function of the model as it is now (split once: its weights become constants)."""
    loaded.model.eval()
    graphdef, state = nnx.split(loaded.model)

    def fn(x: jax.Array) -> jax.Array:
        model = nnx.merge(graphdef, state, copy=True)  # fresh variables of this trace (nnx.scan checks)
        out = model(loaded.preprocess(x) if include else x).astype(jnp.float32)
        return jax.nn.softmax(out, axis=-1) if include and classifier else out

    return fn


def _is_classifier(loaded: LoadedModel, samples: np.ndarray) -> bool:
    out = jax.eval_shape(inference_fn(loaded, True, False), jax.ShapeDtypeStruct((1, *samples.shape[1:]), samples.dtype))
    return out.ndim == 2 and out.shape[-1] == loaded.spec.num_classes
