"""How many evaluations does SHAP's partition explainer need before its maps stop changing?

    python experiments/shap_convergence.py --run-dir /tmp/explain_fm [--images 16]

For each budget (500, 1,000, 2,000, 5,000 evaluations per image) the maps of the first N test
images are compared per image (Pearson correlation) with a 10,000-evaluation reference; also the
number of distinct values per map (a coarse partition gives few) and the seconds per image. A
second part times the first call (compilation included) with every batch padded to one fixed
size against padding to the next power of two (the old behaviour: one compilation per size).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from jaxdl.runs import load_run
from xai.explain.inputs import check_images
from xai.explain.probe import predict_fn
from xai.explain.shap_partition import PartitionShap

BUDGETS = (500, 1000, 2000, 5000)
REFERENCE = 10_000


def correlations(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.reshape(len(a), -1) - a.reshape(len(a), -1).mean(1, keepdims=True)
    b = b.reshape(len(b), -1) - b.reshape(len(b), -1).mean(1, keepdims=True)
    return (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))


def timed_maps(explainer: PartitionShap, images: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, float]:
    explainer(images[:1], targets[:1])  # compile outside the timing
    start = time.perf_counter()
    maps = explainer(images, targets)
    return maps, (time.perf_counter() - start) / len(images)


def first_call_seconds(run, images, targets, fixed: bool) -> float:
    """One image's SHAP values from a fresh explainer, compilation included."""
    explainer = PartitionShap(run.model, preprocess=run.preprocess, max_evals=BUDGETS[0])
    if not fixed:
        explainer.predict = predict_fn(explainer.probe, explainer.batch_size)  # powers of two, as before
    start = time.perf_counter()
    explainer(images[:1], targets[:1])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", default="/tmp/explain_fm")
    parser.add_argument("--images", type=int, default=16)
    args = parser.parse_args()
    run = load_run(args.run_dir)
    images = np.asarray(check_images(run.dataset.test.images[: args.images]))
    explainer = PartitionShap(run.model, preprocess=run.preprocess, max_evals=REFERENCE)
    targets = explainer.predict(images).argmax(-1)
    reference, reference_seconds = timed_maps(explainer, images, targets)
    rows = {}
    for budget in BUDGETS:
        explainer.max_evals = budget
        maps, seconds = timed_maps(explainer, images, targets)
        corr = correlations(maps, reference)
        rows[budget] = {
            "correlation_mean": float(corr.mean()),
            "correlation_min": float(corr.min()),
            "distinct_values_median": float(np.median([len(np.unique(m)) for m in maps])),
            "seconds_per_image": seconds,
        }
    rows[REFERENCE] = {
        "correlation_mean": 1.0,
        "correlation_min": 1.0,
        "distinct_values_median": float(np.median([len(np.unique(m)) for m in reference])),
        "seconds_per_image": reference_seconds,
    }
    first = {
        "fixed_batch": first_call_seconds(run, images, targets, True),
        "power_of_two_batches": first_call_seconds(run, images, targets, False),
    }
    result = {
        "run_dir": args.run_dir,
        "model": run.cfg.model.name,
        "data": run.dataset.name,
        "images": len(images),
        "pixels": int(np.prod(images.shape[1:3])),
        "cores": os.cpu_count(),
        "budgets": rows,
        "first_call_seconds": first,
    }
    out = Path(__file__).parent / "results" / f"shap_convergence_{run.cfg.model.name}_{run.dataset.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"| evaluations | correlation with {REFERENCE:,} (mean / min) | distinct values per map (median) | s per image |")
    print("|---|---|---|---|")
    for budget, row in rows.items():
        print(
            f"| {budget:,} | {row['correlation_mean']:.3f} / {row['correlation_min']:.3f} | "
            f"{row['distinct_values_median']:.0f} | {row['seconds_per_image']:.2f} |"
        )
    print(
        f"first call (1 image, compilation included): fixed batch {first['fixed_batch']:.2f} s, "
        f"power-of-two batches {first['power_of_two_batches']:.2f} s"
    )


if __name__ == "__main__":
    main()
