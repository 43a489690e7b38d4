"""Every explanation method against an independent reference, on one trained LeNet-5 and its PyTorch twin.

    pip install -e '.[bench]'      # torch + grad-cam (the package pytorch-grad-cam)
    python experiments/reference_agreement.py --run-dir /tmp/explain_fm [--images 32 --slow-images 8]

The run's weights fill a PyTorch LeNet-5 written here (normalisation inside, so both take images
in [0, 1]); its logits are checked against jaxdl's first. References:

- pytorch-grad-cam on the twin: Grad-CAM, Grad-CAM++, HiResCAM, XGradCAM, LayerCAM, Eigen-CAM
  (its sign is arbitrary: compared up to sign), Score-CAM with `weighting="pytorch_grad_cam"`,
  and guided backpropagation. CAMs are compared at the layer's resolution (ReLU'd, min-max scaled,
  before either package resizes).
- Score-CAM as published (Wang et al. 2020): numpy + the twin's forward passes.
- `lime` (same segmentation, same samples) and `shap` (PartitionExplainer, same masker and budget)
  on the twin's probabilities.
- Occlusion, deletion / insertion AUC (RISE): numpy loops around the twin.

Per image: Pearson correlation of the two maps and their largest absolute difference (maps in the
units both produce). Images whose maps are both constant agree exactly and are counted, not correlated.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # pytorch-grad-cam's Score-CAM draws a progress bar per image

import numpy as np  # noqa: E402
import scipy.ndimage  # noqa: E402
import shap  # noqa: E402
import torch  # noqa: E402
from bench_gradcam_torch import correlations, cpu_name, import_grad_cam, versions  # noqa: E402
from lenet_twin import TorchLeNet5, torch_twin  # noqa: E402
from lime.lime_image import LimeImageExplainer  # noqa: E402

from jaxdl.runs import load_run  # noqa: E402
from xai.explain.cam import CAM_METHODS, ScoreCAM  # noqa: E402
from xai.explain.guided import GuidedBackprop  # noqa: E402
from xai.explain.inputs import check_images  # noqa: E402
from xai.explain.lime import LimeImage  # noqa: E402
from xai.explain.metrics import Faithfulness, random_baseline  # noqa: E402
from xai.explain.occlusion import Occlusion  # noqa: E402
from xai.explain.probe import Probe  # noqa: E402
from xai.explain.segmentation import segment_batch  # noqa: E402
from xai.explain.shap_partition import PartitionShap  # noqa: E402

LAYER = "features"
PACKAGE_CAMS = {
    "gradcam": "GradCAM",
    "gradcam++": "GradCAMPlusPlus",
    "hirescam": "HiResCAM",
    "xgradcam": "XGradCAM",
    "layercam": "LayerCAM",
    "eigencam": "EigenCAM",
}


def nchw(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(np.asarray(images, np.float32).transpose(0, 3, 1, 2), order="C"))


def probabilities(twin: TorchLeNet5, images: np.ndarray, batch: int = 1000) -> np.ndarray:
    """The twin's softmax on NHWC numpy images, in chunks."""
    with torch.no_grad():
        return np.concatenate(
            [torch.softmax(twin(nchw(images[i : i + batch])), -1).numpy() for i in range(0, len(images), batch)]
        )


def scaled(maps: np.ndarray) -> np.ndarray:
    """ReLU then per-map min-max to [0, 1] (pytorch-grad-cam's scale_cam_image without its resize)."""
    maps = np.maximum(np.asarray(maps, np.float64), 0)
    lo = maps.min(axis=(1, 2), keepdims=True)
    return (maps - lo) / (1e-7 + (maps - lo).max(axis=(1, 2), keepdims=True))


def agreement(ours: np.ndarray, reference: np.ndarray, up_to_sign: bool = False) -> dict:
    """Per-image correlation (min / mean over images whose maps are not both constant) and max |difference|."""
    ours, reference = np.asarray(ours, np.float64), np.asarray(reference, np.float64)
    corr = correlations(ours.reshape(len(ours), -1, 1), reference.reshape(len(reference), -1, 1))
    both_constant = np.isnan(corr) & np.all(np.isclose(ours.reshape(len(ours), -1), reference.reshape(len(reference), -1)), 1)
    corr = np.abs(corr) if up_to_sign else corr
    valid = corr[~both_constant]
    return {
        "images": len(ours),
        "both_constant": int(both_constant.sum()),
        "undefined": int(np.isnan(valid).sum()),
        "correlation_min": float(np.nanmin(valid)) if valid.size else None,
        "correlation_mean": float(np.nanmean(valid)) if valid.size else None,
        "max_abs_difference": None if up_to_sign else float(np.abs(ours - reference).max()),
    }


def package_cam_maps(cam, x: torch.Tensor, targets: list) -> np.ndarray:
    """The package's maps at the layer's resolution, from its own weighting of its recorded activations and gradients."""
    cam(x, targets)
    recorded = cam.activations_and_grads
    grads = recorded.gradients[0].numpy() if recorded.gradients else None
    return cam.get_cam_image(x, cam.target_layers[0], targets, recorded.activations[0].numpy(), grads, False)


def scorecam_as_published(twin: TorchLeNet5, images: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Wang et al. 2020 with numpy and the twin: mask_k = min-max(bilinearly upsampled A_k),
    w_k = p_c(x * mask_k) - p_c(black image), map = ReLU(sum_k w_k A_k)."""
    x = nchw(images)
    with torch.no_grad():
        acts = twin.features((x - twin.mean) / twin.std)  # (B, C, h, w)
        up = torch.nn.functional.interpolate(acts, size=x.shape[-2:], mode="bilinear", align_corners=False).numpy()
    acts = acts.numpy()
    lo, hi = up.min(axis=(2, 3), keepdims=True), up.max(axis=(2, 3), keepdims=True)
    masks = np.where(hi > lo, (up - lo) / np.where(hi > lo, hi - lo, 1), 0)
    black = probabilities(twin, np.zeros_like(images[:1]))[0]
    maps = []
    for image, c, mask, act in zip(images, classes, masks, acts):
        weights = probabilities(twin, image[None] * mask[..., None])[:, c] - black[c]
        maps.append(np.einsum("c,chw->hw", weights, act))
    return scaled(np.stack(maps))


def lime_reference(twin, images, classes, segments, num_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """The `lime` package's superpixel weights per image, and the samples it drew (to give jaxdl the same)."""
    predict = lambda rgb: probabilities(twin, np.asarray(rgb, np.float32)[..., :1])  # lime works on 3 channels
    weights, samples = [], []
    for image, c, seg in zip(images, classes, segments):
        features = int(seg.max()) + 1
        explanation = LimeImageExplainer(random_state=0).explain_instance(
            np.repeat(image, 3, -1).astype(np.float64),
            predict,
            labels=(int(c),),
            top_labels=None,
            num_samples=num_samples,
            batch_size=100,
            segmentation_fn=lambda _, seg=seg: seg,
            random_seed=0,
            hide_color=None,
        )
        w = np.zeros(features)
        for feature, weight in explanation.local_exp[int(c)]:
            w[feature] = weight
        drawn = np.random.RandomState(0).randint(0, 2, num_samples * features).reshape(num_samples, features)  # lime's draw
        drawn[0] = 1
        weights.append(w)
        samples.append(drawn)
    return np.stack(weights), np.stack(samples)


def shap_reference(twin, images, classes, max_evals: int, batch_size: int) -> np.ndarray:
    """shap's PartitionExplainer on the twin with jaxdl's masker (hidden pixels 0), summed over channels."""
    explainer = shap.PartitionExplainer(
        lambda x: probabilities(twin, x), shap.maskers.Image(np.zeros(images.shape[1:]), images.shape[1:])
    )
    return np.stack(
        [
            explainer(image[None], max_evals=max_evals, batch_size=batch_size, outputs=np.array([c]), silent=True)
            .values[0, ..., 0]
            .sum(-1)
            for image, c in zip(images, classes)
        ]
    )


def occlusion_reference(twin, images, classes, size: int, stride: int) -> np.ndarray:
    """MATLAB's occlusionSensitivity: mean drop of p_c over the clipped patches (filled with the image mean) covering each pixel."""
    h, w = images.shape[1:3]
    maps = []
    for image, c in zip(images, classes):
        base = probabilities(twin, image[None])[0, c]
        total, cover = np.zeros((h, w)), np.zeros((h, w))
        for y in range(-(size // 2), h - size // 2, stride):
            for x in range(-(size // 2), w - size // 2, stride):
                hidden = image.copy()
                hidden[max(y, 0) : y + size, max(x, 0) : x + size] = image.mean((0, 1))
                total[max(y, 0) : y + size, max(x, 0) : x + size] += base - probabilities(twin, hidden[None])[0, c]
                cover[max(y, 0) : y + size, max(x, 0) : x + size] += 1
        maps.append(total / np.maximum(cover, 1))
    return np.stack(maps)


def deletion_insertion_reference(twin, images, saliency, classes, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """RISE by hand: reveal / remove pixels in saliency order (stable ties) in equal steps; trapezoid AUC of p_c.
    Deleted pixels become 0; insertion starts from a Gaussian blur (sigma = max(H, W) / 10, edges repeated)."""
    b, h, w, _ = images.shape
    sigma = max(h, w) / 10
    blurred = scipy.ndimage.gaussian_filter(images.astype(np.float64), (0, sigma, sigma, 0), mode="nearest", truncate=3.0)
    order = np.argsort(-saliency.reshape(b, -1), axis=1, kind="stable")
    deletion, insertion = np.zeros((b, steps + 1)), np.zeros((b, steps + 1))
    for s in range(steps + 1):
        top = np.zeros((b, h * w), bool)
        np.put_along_axis(top, order[:, : int(np.round(s / steps * h * w))], True, axis=1)
        top = top.reshape(b, h, w, 1)
        deletion[:, s] = probabilities(twin, np.where(top, 0.0, images))[np.arange(b), classes]
        insertion[:, s] = probabilities(twin, np.where(top, images, blurred))[np.arange(b), classes]
    auc = lambda curve: (curve.sum(1) - 0.5 * (curve[:, 0] + curve[:, -1])) / steps
    return auc(deletion), auc(insertion)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", default="/tmp/explain_fm")
    parser.add_argument("--images", type=int, default=32, help="images for the CAMs, guided backprop, occlusion, RISE")
    parser.add_argument("--slow-images", type=int, default=8, help="images for LIME and SHAP (the packages are slow)")
    parser.add_argument("--lime-samples", type=int, default=1000)
    parser.add_argument("--shap-evals", type=int, default=PartitionShap.__init__.__kwdefaults__["max_evals"])
    args = parser.parse_args()
    TorchCams, stand_in = import_grad_cam_classes()
    run = load_run(args.run_dir)
    if run.cfg.model.name != "lenet5":
        raise SystemExit(f"{args.run_dir} holds a {run.cfg.model.name}; the torch twin is the modern LeNet-5")
    images = np.asarray(check_images(run.dataset.test.images[: args.images]))
    if tuple(run.preprocess.size) != images.shape[1:3]:
        raise SystemExit("the twin normalises but does not resize: use a data set whose images are the model's input size")
    model, pre = run.model, run.preprocess
    twin = torch_twin(model, pre)
    x = nchw(images)
    logits = np.asarray(Probe(model, (), pre).logits(images))
    with torch.no_grad():
        torch_logits = twin(x).numpy()
    classes = logits.argmax(-1)
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    targets = [ClassifierOutputTarget(int(c)) for c in classes]
    layer = twin.features
    rows: dict[str, dict] = {}
    for name, cls in PACKAGE_CAMS.items():
        ours = np.asarray(
            CAM_METHODS[name](model, LAYER, preprocess=pre, upsample=False, relu=name != "eigencam")(images, classes)
        )
        theirs = package_cam_maps(TorchCams[cls](twin, [layer]), x, targets)
        rows[name] = {
            "reference": "pytorch-grad-cam " + cls,
            **agreement(ours, scaled(theirs) if name != "eigencam" else theirs, up_to_sign=name == "eigencam"),
        }
    ours = np.asarray(ScoreCAM(model, LAYER, preprocess=pre, upsample=False, weighting="pytorch_grad_cam")(images, classes))
    rows["scorecam (weighting=pytorch_grad_cam)"] = {
        "reference": "pytorch-grad-cam ScoreCAM",
        **agreement(ours, scaled(package_cam_maps(TorchCams["ScoreCAM"](twin, [layer]), x, targets))),
    }
    ours = np.asarray(ScoreCAM(model, LAYER, preprocess=pre, upsample=False)(images, classes))
    rows["scorecam"] = {
        "reference": "Wang et al. 2020 in numpy + torch",
        **agreement(ours, scorecam_as_published(twin, images, classes)),
    }
    guided = TorchCams["GuidedBackpropReLUModel"](twin, device="cpu")
    theirs = np.stack([guided(x[i : i + 1], int(c)) for i, c in enumerate(classes)])
    rows["guided backprop"] = {
        "reference": "pytorch-grad-cam GuidedBackpropReLUModel",
        **agreement(np.asarray(GuidedBackprop(model, preprocess=pre)(images, classes)), theirs),
    }
    occlusion = Occlusion(model, preprocess=pre)
    size = max(1, round(0.2 * min(images.shape[1:3])))
    rows["occlusion"] = {
        "reference": "numpy loop + torch",
        **agreement(np.asarray(occlusion(images, classes)), occlusion_reference(twin, images, classes, size, max(1, size // 2))),
    }
    faith = Faithfulness(Probe(model, (), pre), steps=20)
    for label, saliency in (
        ("Grad-CAM maps", np.asarray(CAM_METHODS["gradcam"](model, LAYER, preprocess=pre)(images, classes))),
        ("random maps", random_baseline(images.shape[:3], 0)),
    ):
        ours = faith.deletion_insertion(images, saliency, classes)
        deletion, insertion = deletion_insertion_reference(twin, images, saliency, classes, 20)
        for key, theirs in (("deletion_auc", deletion), ("insertion_auc", insertion)):
            diff = np.abs(ours[key] - theirs)
            rows[f"{key.replace('_auc', '')} AUC of {label}"] = {
                "reference": "RISE by hand (numpy + torch)",
                "images": len(images),
                "both_constant": 0,
                "undefined": 0,
                "correlation_min": None,
                "correlation_mean": float(np.corrcoef(ours[key], theirs)[0, 1]),
                "max_abs_difference": float(diff.max()),
            }

    few, few_classes = images[: args.slow_images], classes[: args.slow_images]
    segments = segment_batch(few, "auto")
    weights, samples = lime_reference(twin, few, few_classes, segments, args.lime_samples)
    result = LimeImage(model, preprocess=pre, num_samples=args.lime_samples)(few, few_classes, segments=segments, samples=samples)
    rows["lime (superpixel weights)"] = {
        "reference": "lime LimeImageExplainer, same segments and samples",
        **agreement(result.weights[:, None, :], weights[:, None, :]),
    }
    ours = PartitionShap(model, preprocess=pre, max_evals=args.shap_evals)(few, few_classes)
    rows["shap"] = {
        "reference": "shap PartitionExplainer",
        **agreement(ours, shap_reference(twin, few, few_classes, args.shap_evals, 500)),
    }

    report = {
        "run_dir": args.run_dir,
        "model": run.cfg.model.name,
        "data": run.dataset.name,
        "layer": LAYER,
        "machine": f"{cpu_name()}, {os.cpu_count()} cores",
        "versions": {**versions(stand_in), "lime": _version("lime"), "shap": _version("shap")},
        "logits_max_abs_diff": float(np.abs(logits - torch_logits).max()),
        "predictions_agree": float((torch_logits.argmax(-1) == classes).mean()),
        "lime_samples": args.lime_samples,
        "shap_evals": args.shap_evals,
        "rows": rows,
    }
    out = Path(__file__).parent / "results" / f"reference_agreement_{run.cfg.model.name}_{run.dataset.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print_table(report)


def _version(name: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def import_grad_cam_classes() -> tuple[dict, bool]:
    """pytorch-grad-cam's CAM classes by name (torchvision stood in for where it cannot load)."""
    _, _, stand_in = import_grad_cam()
    import pytorch_grad_cam

    names = [*PACKAGE_CAMS.values(), "ScoreCAM", "GuidedBackpropReLUModel"]
    return {name: getattr(pytorch_grad_cam, name) for name in names}, stand_in


def print_table(report: dict) -> None:
    print(
        f"{report['model']} on {report['data']}, layer {report['layer']}; logits max |diff| {report['logits_max_abs_diff']:.2e}, "
        f"predictions agree {report['predictions_agree']:.3f}"
    )
    print("| method | reference | images | correlation min / mean | max abs difference |")
    print("|---|---|---|---|---|")
    fmt = lambda v, f: "—" if v is None else format(v, f)
    for name, row in report["rows"].items():
        extra = f" ({row['both_constant']} both constant)" if row["both_constant"] else ""
        print(
            f"| {name} | {row['reference']} | {row['images']}{extra} | {fmt(row['correlation_min'], '.6f')} / "
            f"{fmt(row['correlation_mean'], '.6f')} | {fmt(row['max_abs_difference'], '.2e')} |"
        )


if __name__ == "__main__":
    main()
