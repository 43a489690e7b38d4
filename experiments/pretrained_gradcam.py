"""Grad-CAM of an imported torchvision network against `pytorch-grad-cam` on the torch original, on photographs.

    python experiments/pretrained_gradcam.py --arch resnet50 --batch 8 --rounds 3
    python experiments/pretrained_gradcam.py --arch vgg16
    python experiments/pretrained_gradcam.py --arch vit_b_16    # tokens laid on the 14x14 grid on both sides

The torch model is torchvision's network with random weights and random batch-norm statistics
(no download here); `jaxdl.pretrained.import_model` turns it into the zoo's `*_imagenet` model.
Both explain the same 224x224 photographs (scikit-image's, fitted by torchvision's evaluation
transform) for torch's predicted classes, at the same layer (`LAYERS`). Reported: the per-image
Pearson correlation of the final maps, and seconds per call at `--batch` (best of `--rounds`, the
two interleaved, compilation excluded).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from pytorch_grad_cam import GradCAM as TorchGradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from jaxdl.pretrained import import_model, source_metadata
from jaxdl.pretrained.verify import photos, random_torch_model, torch_logits
from xai.explain.cam import GradCAM, token_grid

# (jaxdl layer, the torch module at the same place, reshape of token outputs or None)
LAYERS = {
    "resnet50": ("stages.3.2", lambda m: m.layer4[-1]),
    "vgg16": ("features.16", lambda m: m.features[29]),  # the last conv's ReLU (before the last max-pool)
    "vit_b_16": ("blocks.11.norm1", lambda m: m.encoder.layers[-1].ln_1),
}


def torch_token_grid(tokens: torch.Tensor) -> torch.Tensor:
    """pytorch-grad-cam's ViT reshape: drop the class token, (B, 196, C) -> (B, C, 14, 14)."""
    grid = tokens[:, 1:].reshape(tokens.shape[0], 14, 14, tokens.shape[-1])
    return grid.permute(0, 3, 1, 2)


PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina", "colorwheel")


def normalised(images: np.ndarray, mean, std) -> torch.Tensor:
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="resnet50", choices=tuple(LAYERS))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    source = f"torchvision:{args.arch}"
    layer, torch_layer = LAYERS[args.arch]
    tokens = args.arch.startswith("vit")
    model = random_torch_model(source)
    module, card = import_model(source, torch_model=model)
    meta = source_metadata(source)
    names = (PHOTOS * (args.batch // len(PHOTOS) + 1))[: args.batch]
    images = photos(card, names)
    targets = torch_logits(model, images, meta["mean"], meta["std"]).argmax(1)

    ours = GradCAM(module, layer, preprocess=card.preprocess, reshape=token_grid() if tokens else None)
    theirs = TorchGradCAM(model=model, target_layers=[torch_layer(model)], reshape_transform=torch_token_grid if tokens else None)
    x = normalised(images, meta["mean"], meta["std"])
    run_ours = lambda: np.asarray(ours(images, targets))
    run_theirs = lambda: theirs(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in targets])
    maps_ours, maps_theirs = run_ours(), run_theirs()  # compile / warm up
    seconds_ours = seconds_theirs = float("inf")
    for _ in range(args.rounds):  # interleaved, so a busy moment of the machine hits both
        seconds_ours = min(seconds_ours, timed(run_ours))
        seconds_theirs = min(seconds_theirs, timed(run_theirs))
    corr = [float(np.corrcoef(a.ravel(), b.ravel())[0, 1]) for a, b in zip(maps_ours, maps_theirs)]
    print(
        json.dumps(
            {
                "source": source,
                "layer": layer,
                "batch": args.batch,
                "photos": list(names),
                "min_correlation": min(corr),
                "mean_correlation": float(np.mean(corr)),
                "max_abs_map_gap": float(np.abs(maps_ours - maps_theirs).max()),
                "jaxdl_seconds": round(seconds_ours, 3),
                "grad_cam_seconds": round(seconds_theirs, 3),
                "speedup": round(seconds_theirs / seconds_ours, 2),
                "torch_threads": args.threads,
            }
        )
    )


if __name__ == "__main__":
    main()
