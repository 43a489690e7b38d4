"""Integrated Gradients, captum vs jaxdl, on one ResNet-50 with the same weights (an imported torchvision one).

    python experiments/bench_ig_captum.py [--batch 8] [--steps 50] [--size 224] [--rows 32] [--out FILE]

Captum's IntegratedGradients on the torch model and jaxdl's on the imported network: black baseline,
`--steps` Gauss-Legendre steps (captum's defaults), `--rows` path points x images per forward pass in both
(captum's internal_batch_size; its default, every step at once, needs tens of GB at 224 px). Random weights
and batch-norm statistics (no download), random images; the attributions are compared per image (Pearson r).
Both are timed on a first call (jaxdl: compilation included; torch: its first-call setup) and a second call.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch
from captum.attr import IntegratedGradients as CaptumIG

from jaxdl.data.pipeline import Preprocess
from jaxdl.pretrained import import_model, source_metadata
from jaxdl.pretrained.verify import random_torch_model
from xai.explain.gradients import IntegratedGradients


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    source = "torchvision:resnet50"
    torch_model = random_torch_model(source)
    module, _ = import_model(source, torch_model=torch_model, input_size=args.size)
    meta = source_metadata(source)
    mean, std = torch.tensor(meta["mean"]).view(1, -1, 1, 1), torch.tensor(meta["std"]).view(1, -1, 1, 1)
    images = np.random.default_rng(0).uniform(size=(args.batch, args.size, args.size, 3)).astype(np.float32)
    targets = np.arange(args.batch) * 7
    preprocess = Preprocess((args.size, args.size), tuple(meta["mean"]), tuple(meta["std"]))

    forward = lambda x: torch_model((x - mean) / std)
    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    attribute = lambda: CaptumIG(forward).attribute(x, target=targets.tolist(), n_steps=args.steps, internal_batch_size=args.rows)
    start = time.perf_counter()
    attribute()
    captum_first_s = time.perf_counter() - start
    start = time.perf_counter()
    theirs = attribute()
    captum_s = time.perf_counter() - start
    theirs = theirs.detach().numpy().transpose(0, 2, 3, 1)

    ig = IntegratedGradients(module, preprocess=preprocess, n_steps=args.steps, internal_batch_size=args.rows)
    start = time.perf_counter()
    ig(images, targets)
    first_s = time.perf_counter() - start
    start = time.perf_counter()
    ig(images, targets)
    second_s = time.perf_counter() - start
    r = [float(np.corrcoef(a.ravel(), b.ravel())[0, 1]) for a, b in zip(ig.raw, theirs)]
    result = {
        "batch": args.batch,
        "steps": args.steps,
        "size": args.size,
        "rows_per_pass": args.rows,
        "captum_first_call_s": captum_first_s,
        "captum_second_call_s": captum_s,
        "jaxdl_first_call_s": first_s,
        "jaxdl_second_call_s": second_s,
        "speedup_second_call": captum_s / second_s,
        "speedup_first_calls": captum_first_s / first_s,
        "min_r": min(r),
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
