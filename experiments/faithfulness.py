"""Deletion / insertion AUC and ROAD of Grad-CAM, LIME and occlusion against random and Sobel maps.

    python experiments/faithfulness.py --run-dir /tmp/explain_fm [--images 256]

Targets are the model's predicted classes; curves are the target probability with
20 deletion/insertion steps; mean and standard error over the first N test images whose map
is not empty (constant: its "ranking" would be raster order), with the count used, and the
mean over all N as it was computed before empty maps were excluded.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from jaxdl.runs import load_run
from xai.explain.inputs import check_images
from xai.explain.methods import build_method, default_target_layer
from xai.explain.metrics import Faithfulness, empty_maps, random_baseline, sobel_baseline

KEYS = ("deletion_auc", "insertion_auc", "road_morf", "road_lerf")


def summarise(scores: dict[str, np.ndarray], used: np.ndarray) -> dict:
    """Mean ± standard error over the `used` images, their count, and the mean over all images."""
    row = {k: (float(np.mean(scores[k][used])), float(np.std(scores[k][used]) / np.sqrt(used.sum()))) for k in KEYS}
    return {**row, "images_used": int(used.sum()), "all_images_mean": {k: float(np.mean(scores[k])) for k in KEYS}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", default="/tmp/explain_fm")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--chunk", type=int, default=64, help="images per explainer call")
    args = parser.parse_args()

    run = load_run(args.run_dir)
    images = np.asarray(check_images(run.dataset.test.images[: args.images]))
    layer = default_target_layer(run.model, run.preprocess, images)
    methods = {"gradcam": {}, "lime": {"num_samples": 1000}, "occlusion": {}}
    explainers = {name: build_method(name, run.model, run.preprocess, opts, layer) for name, opts in methods.items()}
    faith = Faithfulness(explainers["gradcam"].probe, steps=20)
    targets = np.asarray(explainers["gradcam"].probe.logits(images)).argmax(-1)
    maps = {
        name: np.concatenate(
            [np.asarray(e(images[i : i + args.chunk], targets[i : i + args.chunk])) for i in range(0, len(images), args.chunk)]
        )
        for name, e in explainers.items()
    }
    maps["random"] = random_baseline(images.shape[:3], 0)
    maps["sobel"] = sobel_baseline(images)
    scores = {
        name: {**faith.deletion_insertion(images, saliency, targets), **faith.road(images, saliency, targets, key=0)}
        for name, saliency in maps.items()
    }
    used = {name: ~empty_maps(saliency) for name, saliency in maps.items()}
    table = {name: summarise(scores[name], used[name]) for name in maps}
    for name in [m for m in methods if not used[m].all()]:  # the baselines on the same images, for a fair comparison
        for baseline in ("random", "sobel"):
            table[f"{baseline}, on {name}'s non-empty images"] = summarise(scores[baseline], used[name])
    result = {
        "model": run.cfg.model.name,
        "data": run.dataset.name,
        "run_dir": str(run.run_dir),
        "images": len(images),
        "target_layer": layer,
        "accuracy_on_these": float(np.mean(targets == run.dataset.test.labels[: len(images)])),
        "table": table,
    }
    out = Path(__file__).parent / "results" / f"faithfulness_{run.cfg.model.name}_{run.dataset.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print("| method | maps used | " + " | ".join(KEYS) + " |\n|---|---|" + "---|" * len(KEYS))
    for name, row in table.items():
        print(
            f"| {name} | {row['images_used']} / {len(images)} | "
            + " | ".join(f"{row[k][0]:.3f} ± {row[k][1]:.3f}" for k in KEYS)
            + " |"
        )
    print(
        "all images, empty maps included: "
        + "; ".join(f"{name} " + " / ".join(f"{row['all_images_mean'][k]:.3f}" for k in KEYS) for name, row in table.items())
    )


if __name__ == "__main__":
    main()
