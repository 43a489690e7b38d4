"""LIME speed: jaxdl's JAX LIME against the `lime` package, same model, segmentation and sample count.

    python experiments/bench_lime.py --run-dir /tmp/explain_fm [--images 8] [--samples 1000] [--model classic]

The `lime` package gets the same jitted model (batches padded to a power of two, so it
compiles a handful of times) and the same precomputed segmentation; it is timed at its
default batch size (10) and at larger ones. jaxdl is timed per image (one image per call)
and per image inside one call on a batch of 64. Compilation is excluded for both.

Both spend the same time in the model, so the speed-up is bounded by how much of the
package's time is its own Python: `--model classic` times the 60k-parameter
lenet5_classic (random weights: speed does not depend on them) instead of the trained
431k-parameter LeNet-5, to show the ratio when the model is cheap.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import numpy as np
from lime.lime_image import LimeImageExplainer

from jaxdl import models
from jaxdl.cpu_devices import use_cpu_devices
from jaxdl.runs import load_run
from jaxdl.data.pipeline import make_preprocess
from xai.explain.inputs import check_images
from xai.explain.lime import LimeImage
from xai.explain.probe import predict_fn
from xai.explain.segmentation import segment_batch


def time_package(predict, images, segments, targets, samples: int, batch_size: int) -> float:
    """Seconds per image for lime.lime_image on the given images."""
    explainer = LimeImageExplainer(random_state=0)
    gray = lambda rgb: predict(np.asarray(rgb, np.float32)[..., :1])
    start = time.perf_counter()
    for image, seg, target in zip(images, segments, targets):
        explainer.explain_instance(
            np.repeat(image, 3, -1).astype(np.float64),
            gray,
            labels=(int(target),),
            top_labels=None,
            num_samples=samples,
            batch_size=batch_size,
            segmentation_fn=lambda _, s=seg: s,
            random_seed=0,
            hide_color=None,
        )
    return (time.perf_counter() - start) / len(images)


def time_jaxdl(lime: LimeImage, images, segments, targets, per_call: int, repeats: int = 3) -> float:
    """Seconds per image for jaxdl's LIME, `per_call` images per call (after one warm-up call)."""
    calls = [
        (images[i : i + per_call], segments[i : i + per_call], targets[i : i + per_call]) for i in range(0, len(images), per_call)
    ]
    lime(*calls[0][::2], segments=calls[0][1])  # compile
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for x, s, t in calls:
            lime(x, t, segments=s)
        best = min(best, (time.perf_counter() - start) / len(images))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", default="/tmp/explain_fm")
    parser.add_argument("--images", type=int, default=8, help="images explained with the lime package")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--model", choices=("trained", "classic"), default="trained")
    parser.add_argument("--out", default=None, help="JSON file (default results/bench_lime_<model>.json)")
    args = parser.parse_args()
    use_cpu_devices("auto", ())  # as the apps do: jaxdl's LIME (and the package's model calls) split over the cores

    run = load_run(args.run_dir)
    model, preprocess = run.model, run.preprocess
    if args.model == "classic":
        spec = models.InputSpec((32, 32), 1, run.dataset.num_classes)
        model = models.build({"name": "lenet5_classic"}, spec, seed=0)
        preprocess = make_preprocess(run.cfg.data, spec.size, *run.dataset.channel_stats())
    images = np.asarray(check_images(run.dataset.test.images[:64]))
    segments = segment_batch(images, "auto")
    lime = LimeImage(model, preprocess=preprocess, num_samples=args.samples)
    targets = np.asarray(jax.nn.softmax(lime.probe.logits(images))).argmax(-1)
    predict = predict_fn(lime.probe, batch_size=1024)
    predict(images[:1])

    n = args.images
    result = {
        "model": args.model,
        "images": n,
        "samples": args.samples,
        "features": int(segments.max() + 1),
        "device": str(jax.devices()[0]),
        "jax_devices": jax.device_count(),
        "package_s_per_image": {},
    }
    for batch_size in (10, 100, 1000):
        result["package_s_per_image"][batch_size] = time_package(
            predict, images[:n], segments[:n], targets[:n], args.samples, batch_size
        )
        print(f"lime package, batch_size {batch_size}: {result['package_s_per_image'][batch_size]:.3f} s/image", flush=True)
    result["jaxdl_s_per_image_single"] = time_jaxdl(lime, images[:n], segments[:n], targets[:n], per_call=1)
    result["jaxdl_s_per_image_batch64"] = time_jaxdl(lime, images, segments, targets, per_call=64)
    default, best = result["package_s_per_image"][10], min(result["package_s_per_image"].values())
    for key in ("single", "batch64"):
        t = result[f"jaxdl_s_per_image_{key}"]
        result[f"speedup_{key}_vs_default"] = default / t
        result[f"speedup_{key}_vs_best"] = best / t
    out = Path(args.out or Path(__file__).parent / "results" / f"bench_lime_{args.model}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
