"""Grad-CAM speed: per-image time on a batch of 256 (one jitted forward + one vjp), every CAM method.

    python experiments/bench_gradcam.py --run-dir /tmp/explain_fm [--batch 256]

Per-image time at batch 256 is compared with one image per call in the same run.
The ResNet-18 comparison with the PyTorch `grad-cam` package needs the zoo's resnet18
(run it with --run-dir of a trained ResNet-18 and --layer of its last stage).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import numpy as np

from jaxdl.runs import load_run
from xai.explain.cam import CAM_METHODS
from xai.explain.inputs import check_images
from xai.explain.methods import default_target_layer


def seconds_per_image(cam, images: np.ndarray, per_call: int, repeats: int = 3) -> float:
    """Best of `repeats` passes over `images`, `per_call` images per call, compilation excluded."""
    jax.block_until_ready(cam(images[:per_call]))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(0, len(images), per_call):
            jax.block_until_ready(cam(images[i : i + per_call]))
        best = min(best, (time.perf_counter() - start) / len(images))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", default="/tmp/explain_fm")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--layer", default=None)
    args = parser.parse_args()

    run = load_run(args.run_dir)
    images = np.asarray(check_images(run.dataset.test.images[: args.batch]))
    layer = args.layer or default_target_layer(run.model, run.preprocess, images)
    result = {
        "model": run.cfg.model.name,
        "layer": layer,
        "batch": args.batch,
        "device": str(jax.devices()[0]),
        "ms_per_image": {},
    }
    for name, cls in CAM_METHODS.items():
        cam = cls(run.model, layer, preprocess=run.preprocess)
        result["ms_per_image"][name] = 1e3 * seconds_per_image(cam, images, args.batch)
        print(f"{name}: {result['ms_per_image'][name]:.3f} ms/image at batch {args.batch}", flush=True)
    single = CAM_METHODS["gradcam"](run.model, layer, preprocess=run.preprocess)
    result["gradcam_ms_per_image_batch1"] = 1e3 * seconds_per_image(single, images[:32], 1)
    result["gradcam_batch_speedup"] = result["gradcam_ms_per_image_batch1"] / result["ms_per_image"]["gradcam"]
    out = Path(__file__).parent / "results" / f"bench_gradcam_{run.cfg.model.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
