"""Honest numbers for a compressed model next to its original: test accuracy, parameters,
nonzeros, bytes on disk (as written, and gzip -9), CPU latency at batch 1 and 256, ratios.

Latencies of the models being compared are measured interleaved in one process, so
machine load hits them alike; the ratios are what to read, not the absolute times.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import platform
from pathlib import Path
from typing import Any, Mapping, Sequence

import jax
import numpy as np
from flax import nnx

from jaxdl.data.base import Split
from jaxdl.timing import latencies as interleaved_latencies


@dataclasses.dataclass
class Measurement:
    name: str
    accuracy: float
    parameters: int
    nonzeros: int
    bytes_on_disk: int
    bytes_gzip: int
    latency_ms: dict[int, float]  # median over interleaved calls
    latency_min_ms: dict[int, float]  # fastest call: the least disturbed by other load on the machine


def disk_bytes(directory: Path) -> tuple[int, int]:
    """(sum of file sizes, sum of gzip -9 sizes of each file) under `directory`."""
    files = sorted(p for p in Path(directory).rglob("*") if p.is_file())
    return sum(p.stat().st_size for p in files), sum(len(gzip.compress(p.read_bytes(), 9)) for p in files)


def parameter_counts(float_model: nnx.Module) -> tuple[int, int]:
    """(parameters, nonzero parameters) of a model's float weights."""
    leaves = jax.tree.leaves(nnx.state(float_model, nnx.Param))
    return sum(x.size for x in leaves), sum(int(np.count_nonzero(np.asarray(x))) for x in leaves)


def jitted_forward(model: nnx.Module, preprocess, device: jax.Device | None = None):
    """A jitted `images -> logits` of a model in eval mode (raw images in, as stored in the data set).

    On the CPU unless `device` says otherwise: the report's latencies are about CPU inference.
    """
    model.eval()
    graphdef, state = nnx.split(model)
    state = jax.device_put(state, device or jax.devices("cpu")[0])
    forward = jax.jit(lambda state, images: nnx.merge(graphdef, state)(preprocess(images)))
    return lambda images: forward(state, images)


def accuracy(forward, split: Split, batch_size: int = 500) -> float:
    correct = 0
    for start in range(0, len(split), batch_size):
        logits = forward(split.images[start : start + batch_size])
        correct += int((np.asarray(logits).argmax(-1) == split.labels[start : start + batch_size]).sum())
    return correct / len(split)


def latencies(forwards: Mapping[str, Any], images: np.ndarray, batch_sizes: Sequence[int], repeats: int):
    """(median, min) milliseconds per call for each model and batch size, measured interleaved on the CPU."""
    return interleaved_latencies(forwards, images, batch_sizes, repeats, jax.devices("cpu")[0])


def ratios(original: Measurement, compressed: Measurement) -> dict[str, float]:
    out = {
        "accuracy_change_points": 100 * (compressed.accuracy - original.accuracy),
        "parameters": compressed.parameters / original.parameters,
        "nonzeros": compressed.nonzeros / original.nonzeros,
        "bytes_on_disk": compressed.bytes_on_disk / original.bytes_on_disk,
        "bytes_gzip": compressed.bytes_gzip / original.bytes_gzip,
    }
    for batch, ms in original.latency_ms.items():
        out[f"speedup_batch{batch}"] = ms / compressed.latency_ms[batch]
        out[f"speedup_min_batch{batch}"] = original.latency_min_ms[batch] / compressed.latency_min_ms[batch]
    return out


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {jax.devices('cpu')[0].platform} backend, jax {jax.__version__}"


def write_report(
    out_dir: Path, recipe: Mapping[str, Any], source: Mapping[str, Any], original: Measurement, compressed: Measurement
) -> dict:
    """report.json and report.md in `out_dir`; returns the JSON content."""
    report = {
        "recipe": dict(recipe),
        "source": dict(source),
        "machine": machine(),
        "models": [dataclasses.asdict(original), dataclasses.asdict(compressed)],
        "ratios": ratios(original, compressed),
    }
    text = json.dumps(report, indent=2)
    (out_dir / "report.json").write_text(text)
    batches = sorted(original.latency_ms)
    header = [
        "model",
        "test acc",
        "params",
        "nonzeros",
        "bytes",
        "gzip bytes",
        *(f"ms @ batch {b} (median / min)" for b in batches),
    ]
    rows = [
        [
            m.name,
            f"{m.accuracy:.4f}",
            f"{m.parameters:,}",
            f"{m.nonzeros:,}",
            f"{m.bytes_on_disk:,}",
            f"{m.bytes_gzip:,}",
            *(f"{m.latency_ms[b]:.2f} / {m.latency_min_ms[b]:.2f}" for b in batches),
        ]
        for m in (original, compressed)
    ]
    r = report["ratios"]
    ratio_row = [
        "ratio",
        f"{r['accuracy_change_points']:+.2f} pts",
        f"{r['parameters']:.3f}x",
        f"{r['nonzeros']:.3f}x",
        f"{r['bytes_on_disk']:.3f}x",
        f"{r['bytes_gzip']:.3f}x",
        *(f"{r[f'speedup_batch{b}']:.2f}x / {r[f'speedup_min_batch{b}']:.2f}x faster" for b in batches),
    ]
    table = "\n".join("| " + " | ".join(row) + " |" for row in [header, ["---"] * len(header), *rows, ratio_row])
    (out_dir / "report.md").write_text(
        f"# Compression report: {recipe.get('name')}\n\n{recipe.get('description', '')}\n\n"
        f"Source: `{source.get('run_dir')}` (step {source.get('step')}). Machine: {machine()}.\n\n{table}\n\n"
        "Bytes are the checkpoint directory as written (Orbax compresses chunks with zstd) and the sum of "
        "gzip -9 of its files; the original is the float32 model exported in the same format. "
        "Latency: the jitted forward pass on the CPU, calls of both models interleaved in one process; "
        "the median, and the fastest call (least disturbed by other load on a shared machine).\n"
    )
    return json.loads(text)
