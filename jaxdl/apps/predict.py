"""Classify image files with any jaxdl model artifact: top-k classes as a CSV and a short table.

    jaxdl-predict model=models/resnet50 images=photos/ top_k=5
    jaxdl-predict model=runs/fashion_mnist-lenet5/2026-... images='scans/*.png' out=scans.csv

Each photo is fitted to the model's input with the artifact's own preprocessing (for an
imported network: shorter side, centre crop, mean/std of its source), then classified.
A file that cannot be read (truncated, not an image, a decompression bomb) is skipped like in
training (`on_bad_file=skip`, listed with its reason in `predict_errors.txt` beside `out`);
`on_bad_file=raise` stops at the first one.
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
from jaxdl.errors import ConfigError, DataError, report_user_errors


@dataclasses.dataclass
class PredictOptions:
    model: str = MISSING  # a run directory, an exported / imported model or a compressed checkpoint
    images: str = MISSING  # a folder (searched recursively), an image file or a glob pattern
    top_k: int = 5
    out: str = "predictions.csv"
    batch_size: int = 16
    on_bad_file: str = "skip"  # skip (listed in predict_errors.txt) | raise


ERRORS_FILE = "predict_errors.txt"


def check_options(options: PredictOptions) -> None:
    """Refuse bad arguments before the model is loaded or anything written."""
    if options.top_k < 1 or options.batch_size < 1:
        raise ConfigError(f"top_k and batch_size must be positive, got {options.top_k} and {options.batch_size}")
    if options.on_bad_file not in ("skip", "raise"):
        raise ConfigError(f"on_bad_file must be skip or raise, got '{options.on_bad_file}'")
    out = Path(options.out).expanduser()
    if out.is_dir():
        raise ConfigError(f"out={options.out} is a directory; pass a file name, e.g. out={out / 'predictions.csv'}")
    if not out.absolute().parent.is_dir():
        raise ConfigError(f"out={options.out}: the folder {out.absolute().parent} does not exist; create it or pass another")


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


def predict_files(options: PredictOptions) -> tuple[list[dict[str, Any]], list[tuple[Path, str]]]:
    """One row per readable image (file and its top-k (class, probability), most probable first), and the
    skipped files with the reason each could not be read."""
    from jaxdl.artifacts import load_model
    from jaxdl.data.photos import find_images, read_readable_photos

    check_options(options)
    loaded = load_model(options.model)
    if loaded.card.input_dtype != "uint8":
        raise ConfigError(f"model={options.model} takes {loaded.card.input_dtype} signals, not images")
    paths = find_images(options.images)
    logits = logits_fn(loaded)
    k = min(options.top_k, loaded.spec.num_classes)
    rows, skipped = [], []
    for start in range(0, len(paths), options.batch_size):
        chunk = paths[start : start + options.batch_size]
        images, chunk, bad = read_readable_photos(chunk, loaded.preprocess, loaded.spec.channels, options.on_bad_file == "skip")
        skipped += bad
        if not chunk:
            continue
        padded = np.concatenate([images, np.repeat(images[-1:], options.batch_size - len(chunk), axis=0)])
        probs = np.asarray(jax.nn.softmax(logits(padded)[: len(chunk)], axis=-1))  # one batch shape: one compilation
        for path, p in zip(chunk, probs):
            top = np.argsort(-p, kind="stable")[:k]
            rows.append({"file": str(path), "top": [(loaded.class_names[i], float(p[i])) for i in top]})
    if not rows:
        raise DataError(f"none of the {len(paths)} image file(s) at '{options.images}' could be read: {skipped[0][1]}")
    return rows, skipped


def write_errors(skipped: list[tuple[Path, str]], path: Path) -> None:
    """`file<TAB>reason` per skipped file, like training's data_errors.txt."""
    path.write_text("".join(f"{file}\t{reason}\n" for file, reason in skipped))


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
    rows, skipped = predict_files(options)
    out = Path(options.out).expanduser()
    write_csv(rows, out)
    print(table(rows))
    print(f"{len(rows)} images -> {options.out}")
    errors = out.absolute().parent / ERRORS_FILE
    errors.unlink(missing_ok=True)  # an earlier prediction's list is not this one's
    if skipped:
        write_errors(skipped, errors)
        for file, reason in skipped:
            print(f"skipped {file}: {reason}")
        print(f"{len(skipped)} unreadable file(s) skipped, listed in {errors}")


if __name__ == "__main__":
    main()
