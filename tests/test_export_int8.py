"""int8 ONNX of a channel-pruned, statically int8-quantized LeNet-5 on Fashion-MNIST: jaxdl's accuracy, its
smaller shapes and its own weight scales; int4 is refused in one line."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from jaxdl.artifacts import load_model
from jaxdl.export import ExportError, export_model
from jaxdl.export.pipeline import report_path
from jaxdl.trainer import train_and_evaluate
from tests.conftest import compose_config, quick_overrides
from tests.test_compress_app import CHANNELS_INT8, compress_config
from tests.test_export import MODELS
from xai.compress import app
from xai.compress.export_int8 import quantize_onnx, qwix_layers

pytest.importorskip("jax2onnx")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def int8_export(tmp_path_factory):
    """LeNet-5 trained one short epoch on 5% of Fashion-MNIST's training labels, channels50 + static int8
    (jaxdl-compress), exported once to int8 ONNX: (compressed model, file, report)."""
    run_dir = tmp_path_factory.mktemp("run")
    overrides = ("data=fashion_mnist", "data.label_fraction=0.05", "model=lenet5", "trainer.epochs=1", "trainer.batch_size=64")
    train_and_evaluate(compose_config(*quick_overrides(*overrides)), run_dir)
    out = run_dir / "compress" / "channels_int8"
    cfg = compress_config(
        f"run_dir={run_dir}",
        *CHANNELS_INT8,
        "latency.batch_sizes=[1]",
        "latency.repeats=1",
    )
    app.compress_and_report(cfg, out)
    loaded = load_model(out / "checkpoint")
    onnx_file = run_dir / "lenet5_int8.onnx"
    return loaded, onnx_file, export_model(loaded, "onnx", onnx_file, latency=False)


def test_int8_onnx_of_a_channel_pruned_checkpoint_keeps_jaxdls_int8_accuracy(int8_export):
    loaded, out, report = int8_export
    check = report["verification"]
    assert check["passed"] and check["test_examples"] == 10_000  # the whole Fashion-MNIST test split
    assert check["jaxdl_int8_accuracy"] - check["onnx_int8_accuracy"] <= 0.5 and check["jaxdl_int8_accuracy"] > 50
    model = onnx.load(str(out))
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # really int8 (QDQ), not a float graph
    int8_weights = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 4]
    conv_out = sorted(t.dims[0] for t in int8_weights)
    widths = loaded.card.model["channels"]  # the pruned widths: the file has the smaller shapes
    assert conv_out and set(conv_out) <= set(np.ravel(list(widths.values()) if isinstance(widths, dict) else widths).tolist())
    assert out.stat().st_size < 0.5 * sum(np.prod(t.dims) * 4 for t in model.graph.initializer)
    assert json.loads(report_path(out, ".json").read_text())["notes"]


def test_int8_onnx_carries_jaxdls_own_weight_and_activation_scales(int8_export):
    """Every int8 weight of the file is qwix's int8 kernel (in ONNX's layout) with qwix's per-channel scales, and
    every quantized layer's input is rounded on qwix's static activation grid: its scale, zero point 128 (uint8)."""
    loaded, out, _ = int8_export
    graph = onnx.load(str(out)).graph
    tensors = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    dequantized = {n.input[0]: n for n in graph.node if n.op_type == "DequantizeLinear"}
    dequantized_to = {n.output[0]: n for n in graph.node if n.op_type == "DequantizeLinear"}
    quantized = {n.output[0]: n for n in graph.node if n.op_type == "QuantizeLinear"}
    weights = {name: tensors[name] for name in dequantized if tensors.get(name, np.zeros(0)).ndim >= 2}
    layers = qwix_layers(loaded)
    assert len(layers) == len(weights) == 4  # conv1, conv2, hidden, head
    for layer in layers:
        layout = layer.kernel if layer.kernel.ndim == 2 else layer.kernel.transpose(3, 2, 0, 1)  # HWIO -> OIHW
        [name] = [n for n, w in weights.items() if w.shape == layout.shape and np.array_equal(w, layout)]
        np.testing.assert_array_equal(tensors[dequantized[name].input[1]], layer.scale.astype(np.float32))
        # the layer's input: DequantizeLinear(QuantizeLinear(x)) feeding the node that consumes the weight
        [node] = [n for n in graph.node if dequantized[name].output[0] in n.input[1:]]
        source = quantized[dequantized_to[node.input[0]].input[0]]
        assert layer.input_scale is not None and tensors[source.input[1]] == np.float32(layer.input_scale)
        assert tensors[source.input[2]] == np.uint8(128)


def test_calibrated_activation_range_is_the_whole_calibration_sets(tmp_path):
    """Without a jaxdl scale the input is calibrated to the largest |value| over all calibration images
    (absmax / 127.5 on the symmetric uint8 grid), not the mean of per-image maxima that clipped ResNet-18."""
    x = onnx.helper.make_tensor_value_info("images", onnx.TensorProto.FLOAT, ["batch", 1, 4, 4])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["batch", 2, 4, 4])
    weight = numpy_helper.from_array(np.arange(1, 3, dtype=np.float32).reshape(2, 1, 1, 1), "w")
    graph = onnx.helper.make_graph([onnx.helper.make_node("Conv", ["images", "w"], ["y"])], "g", [x], [y], [weight])
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 21)]), tmp_path / "f.onnx")
    batches = [np.full((1, 1, 4, 4), peak, np.float32) for peak in (1.0, 2.0, 9.0)]  # per-image maxima: mean 4
    quantize_onnx(tmp_path / "f.onnx", tmp_path / "q.onnx", batches, {})
    q = onnx.load(str(tmp_path / "q.onnx")).graph
    tensors = {t.name: numpy_helper.to_array(t) for t in q.initializer}
    [source] = [n for n in q.node if n.op_type == "QuantizeLinear" and n.input[0] == "images"]
    np.testing.assert_allclose(tensors[source.input[1]], 9.0 / 127.5, rtol=1e-6)


def test_int4_checkpoint_is_refused_in_one_line(tmp_path):
    loaded = MODELS["lenet5"]()
    loaded.extras.update(recipe={"quantize": {"rules": [{"module_path": ".*", "weights": "int4"}]}}, float_model=loaded.model)
    with pytest.raises(ExportError, match="ONNX Runtime has no int4 convolution path"):
        export_model(loaded, "onnx", tmp_path / "m.onnx", latency=False)
    assert not list(tmp_path.glob("m.onnx*"))
