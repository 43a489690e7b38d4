"""Gradient attributions against captum, per image: LeNet-5 (jaxdl) and its PyTorch twin, an imported ResNet-18
and its torchvision original, same weights (random, with random batch-norm statistics: no download).

    python experiments/gradient_agreement.py [--images 8] [--out FILE]

Prints one row per (model, method): images, Pearson r min / mean of the full (H, W, C) attributions, and the
largest absolute difference relative to the largest |attribution|. SmoothGrad: 512 noisy samples on each side
(different random draws), so its r measures statistical, not exact, agreement.
"""

from __future__ import annotations

import argparse
import json

import jax
import numpy as np
import torch
from captum import attr as captum
from flax import nnx
from lenet_twin import torch_twin
from scipy.ndimage import gaussian_filter

from jaxdl.data.pipeline import Preprocess
from jaxdl.models.lenet import lenet5
from jaxdl.models.registry import InputSpec
from jaxdl.pretrained import import_model, source_metadata
from jaxdl.pretrained.verify import random_torch_model
from xai.explain.gradients import InputXGradient, IntegratedGradients, NoiseTunnel, Saliency, make_baseline


def nchw(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).requires_grad_()


def nhwc(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().numpy().transpose(0, 2, 3, 1)


def row(model: str, method: str, ours: np.ndarray, theirs: np.ndarray) -> dict:
    r = [float(np.corrcoef(a.ravel(), b.ravel())[0, 1]) for a, b in zip(ours, theirs)]
    gap = float(np.abs(ours - theirs).max() / np.abs(theirs).max())
    return {"model": model, "method": method, "images": len(ours), "r_min": min(r), "r_mean": float(np.mean(r)), "rel_gap": gap}


def compare(name: str, model, preprocess, forward, images: np.ndarray, targets: np.ndarray, smooth: bool) -> list[dict]:
    t = targets.tolist()
    rows = []
    for options in ({}, {"baseline": "blurred", "n_steps": 32, "method": "riemann_trapezoid"}):
        ig = IntegratedGradients(model, preprocess=preprocess, internal_batch_size=32, **options)
        ig(images, targets)
        base = make_baseline(options.get("baseline", "black"), images, jax.random.split(jax.random.key(0))[1])
        theirs = captum.IntegratedGradients(forward).attribute(
            nchw(images), nchw(base).detach(), target=t, n_steps=ig.n_steps, method=ig.method, internal_batch_size=32
        )
        label = f"IG ({options.get('baseline', 'black')}, {ig.n_steps} steps, {ig.method})"
        rows.append(row(name, label, ig.raw, nhwc(theirs)))
    saliency, ixg = Saliency(model, preprocess=preprocess), InputXGradient(model, preprocess=preprocess)
    saliency(images, targets), ixg(images, targets)
    rows.append(
        row(name, "saliency (signed)", saliency.raw, nhwc(captum.Saliency(forward).attribute(nchw(images), target=t, abs=False)))
    )
    rows.append(row(name, "input x gradient", ixg.raw, nhwc(captum.InputXGradient(forward).attribute(nchw(images), target=t))))
    if smooth:
        tunnel = NoiseTunnel(model, preprocess=preprocess, nt_samples=512, noise_level=0.15)
        tunnel(images, targets)
        sigma = 0.15 * (images.max((1, 2, 3)) - images.min((1, 2, 3)))
        nt = captum.NoiseTunnel(captum.Saliency(forward))
        theirs = [
            nhwc(
                nt.attribute(
                    nchw(images[i : i + 1]), nt_type="smoothgrad", nt_samples=512, stdevs=float(s), target=int(c), abs=False
                )
            )
            for i, (s, c) in enumerate(zip(sigma, targets))
        ]
        rows.append(row(name, "SmoothGrad (saliency, 512 samples, 15% noise)", tunnel.raw, np.concatenate(theirs)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.manual_seed(0)
    rng = np.random.default_rng(0)

    lenet, preprocess = lenet5(InputSpec((28, 28), 1, 10), rngs=nnx.Rngs(0)), Preprocess((28, 28), (0.3,), (0.35,))
    images = np.clip(gaussian_filter(rng.uniform(size=(args.images, 28, 28, 1)), (0, 1.5, 1.5, 0)) * 2 - 0.5, 0, 1)
    targets = np.arange(args.images) % 10
    rows = compare("LeNet-5 (28 px)", lenet, preprocess, torch_twin(lenet, preprocess), images.astype(np.float32), targets, True)

    source = "torchvision:resnet18"
    original = random_torch_model(source)
    resnet, _ = import_model(source, torch_model=original, input_size=64)
    meta = source_metadata(source)
    mean, std = torch.tensor(meta["mean"]).view(1, -1, 1, 1), torch.tensor(meta["std"]).view(1, -1, 1, 1)
    images = rng.uniform(size=(min(args.images, 4), 64, 64, 3)).astype(np.float32)
    forward = lambda x: original((x - mean) / std)
    pre = Preprocess((64, 64), tuple(meta["mean"]), tuple(meta["std"]))
    rows += compare("ResNet-18 imported (64 px)", resnet, pre, forward, images, np.arange(len(images)) * 100, False)

    print("| model | method | images | r min / mean | max abs difference / max abs |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['method']} | {r['images']} | {r['r_min']:.6f} / {r['r_mean']:.6f} | {r['rel_gap']:.1e} |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
