"""Export any jaxdl model to ONNX or StableHLO, verified against jaxdl before it is called a success.

    jaxdl-export model=runs/fashion_mnist-lenet5/2026-... format=onnx out=lenet5.onnx
    jaxdl-export model=models/resnet50 format=stablehlo batch=dynamic images=photos/
    jaxdl-export model=runs/.../compress/int8/checkpoint format=onnx          # int8 ONNX (QDQ)

Writes the file, `<out>.report.md` / `.json` beside it (sizes, agreement, latency), and exits 1
leaving only `<out>.unverified` when the file disagrees with jaxdl.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from omegaconf import MISSING

from jaxdl.apps.cli import parse_options
from jaxdl.errors import ConfigError, report_user_errors

EXIT_UNVERIFIED = 1


@dataclasses.dataclass
class ExportOptions:
    model: str = MISSING  # a run directory, a saved / imported model or a compressed checkpoint
    format: str = "onnx"  # onnx | stablehlo
    batch: str = "dynamic"  # dynamic | N
    preprocess: str = "include"  # include (uint8 NHWC in, probabilities out) | metadata (normalised in, logits out)
    out: str = ""  # default: <model name>.<format suffix> in the current directory
    images: str = ""  # photos to verify an imported network on (default: the run's test images, or sample photos)


def parse_batch(batch: str) -> int | None:
    if batch == "dynamic":
        return None
    if not batch.isdigit() or int(batch) < 1:
        raise ConfigError(f"batch must be 'dynamic' or a positive integer, got {batch!r}")
    return int(batch)


@report_user_errors
def main(argv: list[str] | None = None) -> None:
    options = parse_options(ExportOptions, sys.argv[1:] if argv is None else argv)
    batch = parse_batch(str(options.batch))
    from jaxdl.artifacts import load_model
    from jaxdl.export import export_model, exporter_for
    from jaxdl.export.pipeline import VerificationFailed, report_path

    loaded = load_model(options.model)
    exporter = exporter_for(loaded, options.format)
    out = Path(options.out or f"{loaded.card.model['name']}{exporter.suffix}")
    try:
        report = export_model(loaded, options.format, out, batch, options.preprocess, options.images or None)
    except VerificationFailed as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(EXIT_UNVERIFIED)
    check = report["verification"]
    print(f"{out}: {report['bytes']:,} bytes, verified ({', '.join(f'{k} {v}' for k, v in check.items() if k != 'passed')})")
    print(f"report: {report_path(out, '.md')}")


if __name__ == "__main__":
    main()
