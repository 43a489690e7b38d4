"""Does a CAM method explain the class it is asked about? Top-1 vs top-2 class maps, per image.

    python experiments/scorecam_class_sensitivity.py --run-dir /tmp/explain_fm [--images 64]

Pearson correlation of each image's map for its top-1 class with its map for its top-2 class
(a class-blind method gives ~1), at the default target layer; images where either map is empty
(constant) are counted and left out.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from jaxdl.runs import load_run
from xai.explain.cam import GradCAM, ScoreCAM
from xai.explain.inputs import check_images
from xai.explain.methods import default_target_layer
from xai.explain.metrics import empty_maps

VARIANTS = {
    "Score-CAM (Wang et al. 2020, default)": (ScoreCAM, {}),
    "Score-CAM (weighting=pytorch_grad_cam)": (ScoreCAM, {"weighting": "pytorch_grad_cam"}),
    "Grad-CAM": (GradCAM, {}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", default="/tmp/explain_fm")
    parser.add_argument("--images", type=int, default=64)
    args = parser.parse_args()
    run = load_run(args.run_dir)
    images = np.asarray(check_images(run.dataset.test.images[: args.images]))
    layer = default_target_layer(run.model, run.preprocess, images)
    rows = {}
    for name, (cls, options) in VARIANTS.items():
        cam = cls(run.model, layer, preprocess=run.preprocess, **options)
        top = np.argsort(-np.asarray(cam.probe.logits(images)), -1)
        first, second = np.asarray(cam(images, top[:, 0])), np.asarray(cam(images, top[:, 1]))
        used = ~(empty_maps(first) | empty_maps(second))
        a = first[used].reshape(used.sum(), -1) - first[used].reshape(used.sum(), -1).mean(1, keepdims=True)
        b = second[used].reshape(used.sum(), -1) - second[used].reshape(used.sum(), -1).mean(1, keepdims=True)
        corr = (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))
        rows[name] = {"mean": float(corr.mean()), "median": float(np.median(corr)), "images_used": int(used.sum())}
    result = {"run_dir": args.run_dir, "layer": layer, "images": len(images), "rows": rows}
    out = Path(__file__).parent / "results" / f"class_sensitivity_{run.cfg.model.name}_{run.dataset.name}.json"
    out.write_text(json.dumps(result, indent=2))
    print(
        f"layer {layer}, {len(images)} images\n| method | top-1 vs top-2 map correlation (mean / median) | images used |\n|---|---|---|"
    )
    for name, row in rows.items():
        print(f"| {name} | {row['mean']:.3f} / {row['median']:.3f} | {row['images_used']} / {len(images)} |")


if __name__ == "__main__":
    main()
