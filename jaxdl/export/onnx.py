"""ONNX through jax2onnx: the graph with a symbolic batch, the card and preprocessing in the metadata props."""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Iterator

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxdl.export.formats import EXPORTERS, Exporter, ExportError, Runner, first_line
from jaxdl.export.graph import ExportGraph, inference_fn
from jaxdl.models.layers import Pool, _ceil_padding as ceil_padding

INPUT, OUTPUT = "images", "outputs"
BATCH = "batch"


class PrimitiveBatchNorm(nnx.BatchNorm):
    """nnx.BatchNorm converted op by op: jax2onnx 0.17.1's own BatchNormalization leaves its output NCHW when a
    residual add follows (ResNet's `bn2 + shortcut` fails ONNX shape inference), so its patch is bypassed."""

    __call__ = nnx.BatchNorm.__call__  # captured at import, before jax2onnx patches the class during a conversion


class OnnxMaxPool(Pool):
    """jaxdl's PyTorch-style max pooling through `nnx.max_pool`, which jax2onnx maps to ONNX MaxPool; its plain
    NHWC `reduce_window` becomes a MaxPool with a 4-D kernel that ONNX Runtime rejects ("Unsupported pooling size")."""

    def __call__(self, x: jax.Array) -> jax.Array:
        p, k, s = self.padding, self.window, self.stride
        extra = [(ceil_padding(n, k, s, p) if self.ceil_mode else 0) for n in x.shape[1:3]]
        x = jnp.pad(x, ((0, 0), (p, p + extra[0]), (p, p + extra[1]), (0, 0)), constant_values=-jnp.inf)
        return nnx.max_pool(x, window_shape=(k, k), strides=(s, s), padding="VALID")


SWAPS = {nnx.BatchNorm: PrimitiveBatchNorm, Pool: OnnxMaxPool}


@contextlib.contextmanager
def onnx_layers(model: nnx.Module) -> Iterator[None]:
    """Swap the layers jax2onnx mistranslates for equivalent ones it converts right, while a graph is built."""
    swapped = [m for _, m in model.iter_modules() if type(m) in SWAPS and getattr(m, "kind", "max") == "max"]
    for m in swapped:
        m.__class__ = SWAPS[type(m)]
    try:
        yield
    finally:
        for m in swapped:
            m.__class__ = m.__class__.__mro__[1]


def to_onnx_model(graph: ExportGraph):
    """The ONNX ModelProto of `graph`; a conversion jax2onnx lacks is a one-line `ExportError`."""
    try:
        from jax2onnx import to_onnx
    except ImportError as err:
        raise ExportError(
            "format=onnx needs jax2onnx, onnx and onnxruntime: pip install -e '.[export]' && pip install --no-deps jax2onnx==0.17.1"
        ) from err
    batch = jax.export.symbolic_shape(BATCH)[0] if graph.batch is None else graph.batch
    spec = jax.ShapeDtypeStruct((batch, *graph.input_shape), graph.input_dtype)
    with onnx_layers(graph.loaded.model):
        graph = dataclasses.replace(graph, fn=inference_fn(graph.loaded, graph.preprocess == "include", graph.classifier))
    try:
        model = to_onnx(
            jax.jit(graph.fn), [spec], input_names=[INPUT], output_names=[OUTPUT], model_name=graph.loaded.card.model["name"]
        )
    except Exception as err:  # noqa: BLE001 - conversion errors of every kind become one line
        raise ExportError(
            f"jax2onnx cannot convert model '{graph.loaded.card.model['name']}' to format=onnx: {first_line(err)}"
        ) from err
    for key, value in graph.metadata().items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value
    return model


def write_onnx(graph: ExportGraph, path: Path) -> None:
    import onnx

    onnx.save(to_onnx_model(graph), str(path))


def session(path: Path, threads: int = 0):
    """An ONNX Runtime CPU session of the file (all optimisations on)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def open_onnx(path: Path) -> Runner:
    sess = session(path)
    name = sess.get_inputs()[0].name
    return lambda x: sess.run(None, {name: np.ascontiguousarray(x)})[0]


EXPORTERS.register("onnx")(Exporter("onnx", ".onnx", write_onnx, open_onnx, runtime="ONNX Runtime"))
