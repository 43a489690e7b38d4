"""Export a jaxdl model to a standard file (ONNX, StableHLO) that runs without jaxdl, verified against jaxdl.

    from jaxdl.export import export_model
    report = export_model(jaxdl.load_model(run_dir), "onnx", "model.onnx")

One module per format registers an `Exporter` in `EXPORTERS`; plugins add specialised ones
(`xai.compress` adds int8 ONNX for quantized checkpoints) without the core importing them.
"""

from jaxdl.export.formats import EXPORTERS, Exporter, ExportError, exporter_for
from jaxdl.export.pipeline import export_model

__all__ = ["EXPORTERS", "Exporter", "ExportError", "export_model", "exporter_for"]
