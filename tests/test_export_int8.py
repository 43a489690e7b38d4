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
from xai.compress.export_int8 import qwix_weights

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


def test_int8_onnx_carries_jaxdls_own_weight_scales(int8_export):
    """Every int8 weight of the file is qwix's int8 kernel (in ONNX's layout) with qwix's per-channel scales."""
    loaded, out, _ = int8_export
    graph = onnx.load(str(out)).graph
    tensors = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    dequantized = {n.input[0]: n.input[1] for n in graph.node if n.op_type == "DequantizeLinear"}
    weights = {name: tensors[name] for name in dequantized if tensors.get(name, np.zeros(0)).ndim >= 2}
    kernels = qwix_weights(loaded)
    assert len(kernels) == len(weights) == 4  # conv1, conv2, hidden, head
    for q, scale in kernels:
        layout = q if q.ndim == 2 else q.transpose(3, 2, 0, 1)  # HWIO -> OIHW
        [name] = [n for n, w in weights.items() if w.shape == layout.shape and np.array_equal(w, layout)]
        np.testing.assert_array_equal(tensors[dequantized[name]], scale.astype(np.float32))


def test_int4_checkpoint_is_refused_in_one_line(tmp_path):
    loaded = MODELS["lenet5"]()
    loaded.extras.update(recipe={"quantize": {"rules": [{"module_path": ".*", "weights": "int4"}]}}, float_model=loaded.model)
    with pytest.raises(ExportError, match="ONNX Runtime has no int4 convolution path"):
        export_model(loaded, "onnx", tmp_path / "m.onnx", latency=False)
    assert not list(tmp_path.glob("m.onnx*"))
