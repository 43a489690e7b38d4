"""int8 ONNX of a qwix-quantized compressed checkpoint: the float twin's graph, QDQ-quantized by ONNX Runtime.

jax2onnx emits no quantize/dequantize operators, so the dequantized float twin is exported and ONNX Runtime's
`quantize_static` turns it into a QDQ graph: static, per-channel int8 weights with jaxdl's own (qwix's) scales
passed as `TensorQuantOverrides`, so the file holds the very int8 weights jaxdl computes with; 8-bit (uint8)
activations on qwix's static scales where jaxdl has them (`int8_static`), else calibrated on the run's training
images. The file is verified by test accuracy against jaxdl's own int8 model.
Registered with the core's export registry as a plugin (`xai.compress.plugin`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from flax import nnx

from jaxdl.artifacts import LoadedModel
from jaxdl.export.formats import EXPORTERS, Exporter, ExportError, Runner
from jaxdl.export.graph import ExportGraph
from jaxdl.export.onnx import INPUT, open_onnx, write_onnx
from jaxdl.export.verify import reference

CALIBRATION_EXAMPLES = 256
ACCURACY_POINTS = 0.5  # int8 ONNX test accuracy may lose at most this much against jaxdl's int8 model
EVAL_BATCH = 256
# what qwix quantizes (conv and dense layers); quantizing the folded-in preprocessing or the softmax
# output to int8 would round probabilities into ties and change the argmax
QUANTIZED_OPS = ["Conv", "MatMul", "Gemm"]


def quantize_rules(loaded: LoadedModel) -> list[dict]:
    return list((((loaded.extras.get("recipe") or {}).get("quantize") or {}).get("rules")) or [])


def is_quantized(loaded: LoadedModel) -> bool:
    return bool(quantize_rules(loaded))


def _refuse_int4(loaded: LoadedModel) -> None:
    bits = {str(rule.get(kind)) for rule in quantize_rules(loaded) for kind in ("weights", "activations")}
    if any("int4" in b for b in bits):
        raise ExportError(
            "int4 models cannot be exported to ONNX: ONNX Runtime has no int4 convolution path; export the int8 recipe"
        )


def write_int8(graph: ExportGraph, path: Path) -> None:
    """Export the float twin, then quantize it statically (QDQ, per-channel weights) with ONNX Runtime."""
    loaded = graph.loaded
    _refuse_int4(loaded)
    float_graph = dataclasses.replace(graph, loaded=dataclasses.replace(loaded, model=loaded.extras["float_model"]))
    float_graph = dataclasses.replace(float_graph, fn=_float_fn(float_graph))
    float_path = path.with_name(path.name + ".float.onnx")
    write_onnx(float_graph, float_path)
    batches = [graph.to_model_input(chunk[None]) for chunk in calibration_images(loaded)]
    try:
        quantize_onnx(float_path, path, batches, scale_overrides(loaded, float_path))
    finally:
        float_path.unlink(missing_ok=True)
        Path(str(float_path) + ".data").unlink(missing_ok=True)
    _copy_metadata(float_graph, path)


def quantize_onnx(float_path: Path, path: Path, batches: list[np.ndarray], overrides: dict, **options) -> None:
    """ONNX Runtime's `quantize_static` of `float_path` calibrated on `batches` (one input array each):
    jaxdl's choices (QDQ, per-channel, U8S8, symmetric activations, conv and dense only) unless `options`
    (quantize_static's own arguments, e.g. for benchmarks of other formats) say otherwise."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(batches)

        def get_next(self):
            x = next(self.items, None)
            return None if x is None else {INPUT: x}

    extra = {  # symmetric activations, as jaxdl's; their range is the calibration set's whole min/max (the mean of
        # per-example ranges clips what jaxdl's float activations keep: ResNet-18 lost 0.7 points, RESULTS issue 23)
        "ActivationSymmetric": True,
        "CalibMovingAverage": False,
        "TensorQuantOverrides": overrides,
        **options.pop("extra_options", {}),
    }
    settings = {
        "quant_format": QuantFormat.QDQ,
        "per_channel": True,
        # uint8 activations: with int8 ones ONNX Runtime 1.32 gives the Transposes it propagates QDQ through a
        # uint8 zero point, and a ResNet's file then fails to load (RESULTS, issue 23); U8S8 is its x86 format
        "activation_type": QuantType.QUInt8,
        "weight_type": QuantType.QInt8,
        "op_types_to_quantize": QUANTIZED_OPS,
        **options,
    }
    quantize_static(str(float_path), str(path), Reader(), extra_options=extra, **settings)


@dataclasses.dataclass(frozen=True)
class QwixLayer:
    """One conv or dense layer as qwix quantized it."""

    kernel: np.ndarray  # int8 values in jaxdl's layout (HWIO, or (in, out) for a dense layer)
    scale: np.ndarray  # per output channel
    input_scale: float | None  # static int8 scale of the layer's input (None: float or dynamic activations)

    def onnx_weight(self) -> tuple[np.ndarray, int]:
        """The float twin's weight in ONNX's layout (OIHW for a convolution) and its channel axis."""
        weight = (self.kernel * self.scale).astype(np.float32)
        return (weight, 1) if weight.ndim == 2 else (weight.transpose(3, 2, 0, 1), 0)


def qwix_layers(loaded: LoadedModel) -> list[QwixLayer]:
    """Every layer whose kernel qwix quantized per output channel (any other layout is left to ONNX Runtime)."""
    flat = {path: leaf for path, leaf in nnx.to_flat_state(nnx.state(loaded.model))}
    layers = []
    for path, leaf in flat.items():
        if path[-2:] != ("array", "qvalue"):
            continue
        q, scale = np.asarray(leaf[...]), np.asarray(flat[(*path[:-1], "scale")][...])
        if scale.size == q.shape[-1]:
            layer = path[:-3]  # (..., layer, "kernel", "array", "qvalue")
            inputs = [v for p, v in flat.items() if len(p) == len(layer) + 2 and p[:-2] == layer and p[-2].endswith("_lhs_scale")]
            input_scale = float(np.asarray(inputs[0][...]).reshape(())) if len(inputs) == 1 else None
            layers.append(QwixLayer(q, scale.reshape(-1), input_scale))
    return layers


def scale_overrides(loaded: LoadedModel, float_onnx: Path) -> dict[str, list[dict]]:
    """`TensorQuantOverrides` carrying qwix's scales: per-channel ones for each ONNX weight (zero point 0) and,
    for a statically quantized layer, its input's scale (zero point 128: uint8's grid then is int8's [-128, 127],
    so the file rounds activations exactly as jaxdl does). The ONNX weight of a kernel is found by value: the
    float twin's weights are exactly qwix's int8 values times its scales."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(float_onnx)).graph
    initializers = [(t.name, numpy_helper.to_array(t)) for t in graph.initializer]
    overrides = {}
    for layer in qwix_layers(loaded):
        weight, axis = layer.onnx_weight()
        name = next((n for n, value in initializers if value.shape == weight.shape and np.array_equal(value, weight)), None)
        if name is None:
            continue
        overrides[name] = [{"axis": axis, "scale": np.float32(s), "zero_point": np.int8(0)} for s in layer.scale]
        if layer.input_scale is not None:
            for node in graph.node:
                if node.op_type in QUANTIZED_OPS and name in node.input[1:]:
                    overrides[node.input[0]] = [
                        {"scale": np.array(layer.input_scale, np.float32), "zero_point": np.array(128, np.uint8)}
                    ]
    return overrides


def _float_fn(graph: ExportGraph):
    from jaxdl.export.graph import inference_fn

    return inference_fn(graph.loaded, graph.preprocess == "include", graph.classifier)


def _copy_metadata(graph: ExportGraph, path: Path) -> None:
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in {
        **graph.metadata(),
        "quantization": "int8 QDQ (ONNX Runtime quantize_static, per-channel weights with jaxdl's scales)",
    }.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value
    onnx.save(model, str(path))


def calibration_images(loaded: LoadedModel, count: int = CALIBRATION_EXAMPLES) -> np.ndarray:
    """Training images of the run (activation ranges come from the data the model was trained on)."""
    if loaded.cfg is None or "data" not in loaded.cfg:
        raise ExportError(f"{loaded.path} has no data config: int8 ONNX calibrates on the run's training images")
    from jaxdl.data import load_dataset

    return load_dataset(loaded.cfg.data).train.images[:count]


def accuracy_check(graph: ExportGraph, runner: Runner) -> dict:
    """Test accuracy of the int8 file vs jaxdl's int8 model, on the whole test split."""
    from jaxdl.export.samples import test_split

    images, labels = test_split(graph.loaded)
    jaxdl_fn = reference(graph)
    hits = {"jaxdl": 0, "onnx": 0}
    for start in range(0, len(images), EVAL_BATCH):
        x = graph.to_model_input(images[start : start + EVAL_BATCH])
        y = labels[start : start + EVAL_BATCH]
        hits["jaxdl"] += int((jaxdl_fn(x).argmax(-1) == y).sum())
        hits["onnx"] += int((np.asarray(runner(x)).argmax(-1) == y).sum())
    jaxdl_acc, onnx_acc = (100.0 * hits[k] / len(images) for k in ("jaxdl", "onnx"))
    notes = [
        "weights and activations int8 (QDQ): jaxdl's per-channel weight scales; jaxdl's static activation scales"
        " where it has them, else ranges calibrated on training images"
    ]
    if (graph.loaded.extras.get("recipe") or {}).get("prune"):
        notes.append("unstructured sparsity is exported dense: zeros give no speed in ONNX Runtime")
    return {
        "passed": bool(jaxdl_acc - onnx_acc <= ACCURACY_POINTS),
        "test_examples": len(images),
        "jaxdl_int8_accuracy": jaxdl_acc,
        "onnx_int8_accuracy": onnx_acc,
        "allowed_loss_points": ACCURACY_POINTS,
        "notes": notes,
    }


EXPORTERS.register("onnx-int8")(
    Exporter("onnx", ".onnx", write_int8, open_onnx, accepts=is_quantized, verify=accuracy_check, runtime="ONNX Runtime")
)
