"""int8 ONNX from a qwix-quantized, channel-pruned compressed checkpoint; int4 is refused in one line."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from jaxdl.artifacts import load_model
from jaxdl.export import ExportError, export_model
from tests.test_compress_app import compressed  # noqa: F401 - the module-scoped digits channels50 + int8 checkpoint
from tests.test_export import MODELS

pytest.importorskip("jax2onnx")
pytest.importorskip("onnxruntime")


def test_int8_onnx_of_a_channel_pruned_checkpoint_keeps_jaxdls_int8_accuracy(compressed, tmp_path):  # noqa: F811
    _, out_dir, _ = compressed
    loaded = load_model(out_dir / "checkpoint")
    out = tmp_path / "lenet5_int8.onnx"
    report = export_model(loaded, "onnx", out, latency=False)
    check = report["verification"]
    assert check["passed"] and check["test_examples"] > 300
    assert check["jaxdl_int8_accuracy"] - check["onnx_int8_accuracy"] <= 0.5
    model = onnx.load(str(out))
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # really int8 (QDQ), not a float graph
    int8_weights = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 4]
    conv_out = sorted(t.dims[0] for t in int8_weights)
    widths = loaded.card.model["channels"]  # the pruned widths: the file has the smaller shapes
    assert conv_out and set(conv_out) <= set(np.ravel(list(widths.values()) if isinstance(widths, dict) else widths).tolist())
    assert out.stat().st_size < 0.5 * sum(np.prod(t.dims) * 4 for t in model.graph.initializer)
    assert json.loads((tmp_path / "export_report.json").read_text())["notes"]


def test_int4_checkpoint_is_refused_in_one_line(tmp_path):
    loaded = MODELS["lenet5"]()
    loaded.extras.update(recipe={"quantize": {"rules": [{"module_path": ".*", "weights": "int4"}]}}, float_model=loaded.model)
    with pytest.raises(ExportError, match="ONNX Runtime has no int4 convolution path"):
        export_model(loaded, "onnx", tmp_path / "m.onnx", latency=False)
    assert not list(tmp_path.glob("m.onnx*"))
