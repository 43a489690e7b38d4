"""Classify image files with any jaxdl model artifact: top-k classes as a CSV and a short table.

    jaxdl-predict model=models/resnet50 images=photos/ top_k=5
    jaxdl-predict model=runs/fashion_mnist-lenet5/2026-... images='scans/*.png' out=scans.csv

Each photo is fitted to the model's input with the artifact's own preprocessing (for an
imported network: shorter side, centre crop, mean/std of its source), then classified.
"""

from __future__ import annotations

import csv
import dataclasses
import sys
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np
from flax import nnx
from omegaconf import MISSING

from jaxdl.apps.cli import parse_options
from jaxdl.errors import ConfigError, report_user_errors


@dataclasses.dataclass
class PredictOptions:
    model: str = MISSING  # a run directory, an exported / imported model or a compressed checkpoint
    images: str = MISSING  # a folder (searched recursively), an image file or a glob pattern
    top_k: int = 5
    out: str = "predictions.csv"
    batch_size: int = 16


def logits_fn(loaded: Any) -> Callable[[np.ndarray], np.ndarray]:
    """A jitted `uint8 images -> float32 logits` of a loaded model (preprocessing included); an exported
    `.onnx` / `.stablehlo` file runs in its own runtime (ONNX Runtime, deserialized StableHLO)."""
    if hasattr(loaded, "logits"):
        return loaded.logits
    graphdef, state = nnx.split(loaded.model)
    preprocess = loaded.preprocess

    @jax.jit
    def logits(state, images):
        return nnx.merge(graphdef, state)(preprocess(images)).astype(np.float32)

    return lambda images: np.asarray(logits(state, images))


def predict_files(options: PredictOptions) -> list[dict[str, Any]]:
    """One row per image: file and its top-k (class, probability), most probable first."""
    from jaxdl.artifacts import load_model
    from jaxdl.data.photos import find_images, read_photos

    if options.top_k < 1 or options.batch_size < 1:
        raise ConfigError(f"top_k and batch_size must be positive, got {options.top_k} and {options.batch_size}")
    loaded = load_model(options.model)
    if loaded.card.input_dtype != "uint8":
        raise ConfigError(f"model={options.model} takes {loaded.card.input_dtype} signals, not images")
    paths = find_images(options.images)
    logits = logits_fn(loaded)
    k = min(options.top_k, loaded.spec.num_classes)
    rows = []
    for start in range(0, len(paths), options.batch_size):
        chunk = paths[start : start + options.batch_size]
        images = read_photos(chunk, loaded.preprocess, loaded.spec.channels)
        padded = np.concatenate([images, np.repeat(images[-1:], options.batch_size - len(chunk), axis=0)])
        probs = np.asarray(jax.nn.softmax(logits(padded)[: len(chunk)], axis=-1))  # one batch shape: one compilation
        for path, p in zip(chunk, probs):
            top = np.argsort(-p, kind="stable")[:k]
            rows.append({"file": str(path), "top": [(loaded.class_names[i], float(p[i])) for i in top]})
    return rows


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    k = len(rows[0]["top"])
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", *(f"{kind}_{i}" for i in range(1, k + 1) for kind in ("class", "probability"))])
        for row in rows:
            writer.writerow([row["file"], *(v for name, p in row["top"] for v in (name, f"{p:.6f}"))])


def table(rows: list[dict[str, Any]], shown: int = 3) -> str:
    """The file name and its first `shown` classes with probabilities, one line per image."""
    width = max(len(Path(r["file"]).name) for r in rows)
    return "\n".join(
        f"{Path(r['file']).name:<{width}}  " + "  ".join(f"{name[:28]} {p:.3f}" for name, p in r["top"][:shown]) for r in rows
    )


@report_user_errors
def main(argv: list[str] | None = None) -> None:
    options = parse_options(PredictOptions, sys.argv[1:] if argv is None else argv)
    rows = predict_files(options)
    write_csv(rows, Path(options.out))
    print(table(rows))
    print(f"{len(rows)} images -> {options.out}")


if __name__ == "__main__":
    main()
