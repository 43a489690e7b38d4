"""int8 ONNX of a qwix-quantized compressed checkpoint: the float twin's graph, QDQ-quantized by ONNX Runtime.

jax2onnx emits no quantize/dequantize operators, so the dequantized float twin is exported and ONNX Runtime's
`quantize_static` turns it into a QDQ graph: static, per-channel int8 weights with jaxdl's own (qwix's) scales
passed as `TensorQuantOverrides`, so the file holds the very int8 weights jaxdl computes with; 8-bit (uint8)
activations calibrated on the run's training images. The file is verified by test accuracy against jaxdl's own int8 model.
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
        quantize_onnx(float_path, path, batches, weight_overrides(loaded, float_path))
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

    extra = {  # activations as jaxdl: symmetric, mean of per-example absmax
        "ActivationSymmetric": True,
        "CalibMovingAverage": True,
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


def qwix_weights(loaded: LoadedModel) -> list[tuple[np.ndarray, np.ndarray]]:
    """(int8 values, per-output-channel scales) of every kernel qwix quantized, in jaxdl's layout (HWIO, (in, out))."""
    flat = {path: leaf for path, leaf in nnx.to_flat_state(nnx.state(loaded.model))}
    kernels = []
    for path, leaf in flat.items():
        if path[-2:] != ("array", "qvalue"):
            continue
        q, scale = np.asarray(leaf[...]), np.asarray(flat[(*path[:-1], "scale")][...])
        if scale.size == q.shape[-1]:  # per output channel; any other layout is left to ONNX Runtime
            kernels.append((q, scale.reshape(-1)))
    return kernels


def weight_overrides(loaded: LoadedModel, float_onnx: Path) -> dict[str, list[dict]]:
    """`TensorQuantOverrides` giving each ONNX weight qwix's per-channel scales (zero point 0). The ONNX weight
    of a kernel is found by value: the float twin's weights are exactly qwix's int8 values times its scales,
    transposed to OIHW for a convolution (channel axis 0), as they are for a dense layer (channel axis 1)."""
    import onnx
    from onnx import numpy_helper

    initializers = [(t.name, numpy_helper.to_array(t)) for t in onnx.load(str(float_onnx)).graph.initializer]
    overrides = {}
    for q, scale in qwix_weights(loaded):
        dense = q.ndim == 2
        weight = (q * scale).astype(np.float32) if dense else (q * scale).astype(np.float32).transpose(3, 2, 0, 1)
        axis = 1 if dense else 0
        for name, value in initializers:
            if value.shape == weight.shape and np.array_equal(value, weight):
                overrides[name] = [{"axis": axis, "scale": np.float32(s), "zero_point": np.int8(0)} for s in scale]
                break
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
        "weights and activations int8 (QDQ): jaxdl's per-channel weight scales; activation ranges calibrated on training images"
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
