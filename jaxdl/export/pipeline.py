"""Write, verify, time, report: the one way every format is exported.

The file is written as `<out>.unverified` and takes its real name only once it agrees with jaxdl,
so a failed export never leaves a file that looks like a success.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import numpy as np

from jaxdl.artifacts import LoadedModel
from jaxdl.errors import ConfigError
from jaxdl.export import onnx as _onnx, stablehlo as _stablehlo  # noqa: F401 - register the core formats
from jaxdl.export.formats import exporter_for, first_line
from jaxdl.export.graph import PREPROCESS_MODES, build_graph
from jaxdl.export.samples import verification_inputs
from jaxdl import timing
from jaxdl.export.verify import batch_of, float_agreement, reference

LATENCY_BATCHES = (1, 64)
LATENCY_REPEATS = 5
UNVERIFIED = ".unverified"


class VerificationFailed(Exception):
    """The exported file disagrees with jaxdl: it is kept only as `<out>.unverified` (exit 1)."""


def export_model(
    loaded: LoadedModel,
    fmt: str,
    out: str | Path,
    batch: int | None = None,
    preprocess: str = "include",
    images: str | None = None,
    latency: bool = True,
) -> dict:
    """Export `loaded` to `out` in `fmt`, verify it against jaxdl, write `<out>.report.md/.json` beside it."""
    if preprocess not in PREPROCESS_MODES:
        raise ConfigError(f"preprocess must be one of {', '.join(PREPROCESS_MODES)}, got {preprocess!r}")
    if batch is not None and batch < 1:
        raise ConfigError(f"batch must be 'dynamic' or a positive size, got {batch}")
    out = Path(out).absolute()
    inputs = verification_inputs(loaded, images)
    graph = build_graph(loaded, inputs, batch, preprocess)
    exporter = exporter_for(loaded, fmt)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + UNVERIFIED)
    for stale in (out, *companions(out)):
        stale.unlink(missing_ok=True)
    exporter.write(graph, tmp)
    try:  # a file its runtime refuses to load fails verification like one that disagrees
        runner = fixed_batches(exporter.open(tmp), batch)
        check = exporter.verify(graph, runner) if exporter.verify else float_agreement(graph, runner, inputs)
    except Exception as err:  # noqa: BLE001 - a file its runtime rejects fails verification, in one line
        check = {"passed": False, "reason": f"the file does not run in {exporter.runtime or fmt}: {first_line(err)}"}
    report = {
        "file": str(out),
        "format": exporter.format,
        "exporter": exporter.runtime,
        "source": str(loaded.path),
        "step": loaded.step,
        "model": loaded.card.model.get("name"),
        "batch": "dynamic" if batch is None else batch,
        "preprocess": preprocess,
        "input": {"shape": ["batch" if batch is None else batch, *graph.input_shape], "dtype": str(graph.input_dtype)},
        "bytes": tmp.stat().st_size,
        "verification": check,
        "notes": check.pop("notes", []),
    }
    if latency and check.get("passed"):
        report["latency_ms"] = latencies(graph, runner, inputs, exporter.runtime, batch)
    if not check.get("passed"):
        report["file"] = str(tmp)
        write_report(out, report)
        raise VerificationFailed(f"{fmt} export of {loaded.path} failed verification ({summary(check)}); kept as {tmp}")
    os.replace(tmp, out)
    for side in companions(tmp):
        os.replace(side, out.with_name(out.name + side.name[len(tmp.name) :]))
    write_report(out, report)
    return report


def companions(path: Path) -> list[Path]:
    """Files an exporter writes beside `path` (the StableHLO card)."""
    return [p for p in path.parent.glob(path.name + ".*") if p.name != path.name + UNVERIFIED]


def fixed_batches(runner: Callable[[np.ndarray], np.ndarray], batch: int | None) -> Callable[[np.ndarray], np.ndarray]:
    """A file with a fixed batch size fed in chunks of that size (the last one padded)."""
    if batch is None:
        return runner

    def run(x: np.ndarray) -> np.ndarray:
        outs = []
        for start in range(0, len(x), batch):
            chunk = x[start : start + batch]
            outs.append(runner(batch_of(chunk, batch))[: len(chunk)])
        return np.concatenate(outs)

    return run


def latencies(graph, runner, inputs: np.ndarray, runtime: str, batch: int | None) -> dict:
    """Median milliseconds per call, jaxdl (jitted) vs the exported file's runtime, at batch 1 and 64 (or the fixed batch)."""
    forwards = {"jaxdl (jit)": reference(graph), runtime: runner}
    sizes = LATENCY_BATCHES if batch is None else (batch,)
    times = timing.latencies(forwards, graph.to_model_input(inputs), sizes, LATENCY_REPEATS)
    return {str(size): {name: times[name][0][size] for name in forwards} for size in sizes}


def summary(check: dict) -> str:
    if "reason" in check:
        return check["reason"]
    return ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in check.items() if k != "passed")


def report_path(out: Path, suffix: str) -> Path:
    """`model.onnx` -> `model.onnx.report.md`: every exported file has its own report, whatever shares its folder."""
    return out.with_name(f"{out.name}.report{suffix}")


def write_report(out: Path, report: dict) -> None:
    report_path(out, ".json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"# Export of {report['model']} to {report['format']}",
        "",
        f"- file: `{report['file']}` ({report['bytes']:,} bytes)",
        f"- source: `{report['source']}`" + (f", step {report['step']}" if report["step"] is not None else ""),
        f"- input: {report['input']['dtype']} {report['input']['shape']}, preprocessing {report['preprocess']}d",
        f"- verification: {'passed' if report['verification'].get('passed') else 'FAILED'} ({summary(report['verification'])})",
    ]
    lines += [f"- {note}" for note in report.get("notes", [])]
    if "latency_ms" in report:
        runtimes = list(next(iter(report["latency_ms"].values())))
        lines += ["", "| batch | " + " | ".join(f"{r} ms" for r in runtimes) + " |", "|---" * (len(runtimes) + 1) + "|"]
        for size, row in report["latency_ms"].items():
            lines.append(f"| {size} | " + " | ".join(f"{row[r]:.2f}" for r in runtimes) + " |")
    report_path(out, ".md").write_text("\n".join(lines) + "\n")
