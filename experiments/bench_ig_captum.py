"""Integrated Gradients, captum vs jaxdl, on one ResNet-50 with the same weights (an imported torchvision one).

    python experiments/bench_ig_captum.py [--batch 8] [--steps 50] [--size 224] [--rows 32] [--repeats 2] [--out FILE]
    XLA_FLAGS=--xla_cpu_use_onednn=true python experiments/bench_ig_captum.py ...   # XLA flags are read from the env

Captum's IntegratedGradients on the torch model and jaxdl's on the imported network: black baseline,
`--steps` Gauss-Legendre steps (captum's defaults), `--rows` path points x images per forward pass in both
(captum's internal_batch_size; its default, every step at once, needs tens of GB at 224 px). Random weights
and batch-norm statistics (no download), random images; the attributions are compared per image (Pearson r).
Timing: bench_throughput's `latency_ms` (a warm-up call, then the median and fastest of `--repeats` calls);
jaxdl's compilation is timed on its own. `--threads` sets torch's intra-op threads (XLA:CPU's Eigen pool uses
every core); `--only jaxdl` skips captum (for profiling jaxdl's settings; ratios come from runs with both);
`--conv-grad native` explains with jax's own conv gradient instead of xai.explain.conv_grad's (the A/B of that change).
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import numpy as np
import torch
from bench_throughput import latency_ms, report
from captum.attr import IntegratedGradients as CaptumIG

from jaxdl.data.pipeline import Preprocess
from jaxdl.pretrained import import_model, source_metadata
from jaxdl.pretrained.verify import random_torch_model
from xai.explain import gradients
from xai.explain.gradients import IntegratedGradients


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--only", choices=("jaxdl", "captum"), default=None)
    parser.add_argument("--conv-grad", choices=("explain", "native"), default="explain", help="native: jax's own conv gradient")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.conv_grad == "native":  # the explainers' model copy without xai.explain.conv_grad's input gradient (A/B)
        gradients.with_input_grad_convs = lambda model: model
    torch.set_num_threads(args.threads)
    source = "torchvision:resnet50"
    torch_model = random_torch_model(source)
    module, _ = import_model(source, torch_model=torch_model, input_size=args.size)
    meta = source_metadata(source)
    mean, std = torch.tensor(meta["mean"]).view(1, -1, 1, 1), torch.tensor(meta["std"]).view(1, -1, 1, 1)
    images = np.random.default_rng(0).uniform(size=(args.batch, args.size, args.size, 3)).astype(np.float32)
    targets = np.arange(args.batch) * 7
    preprocess = Preprocess((args.size, args.size), tuple(meta["mean"]), tuple(meta["std"]))
    result = {
        **{k: getattr(args, k) for k in ("batch", "steps", "size", "rows", "repeats", "conv_grad")},
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }

    theirs = None
    if args.only != "jaxdl":
        forward = lambda x: torch_model((x - mean) / std)
        x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
        captum = CaptumIG(forward)
        call = lambda _: captum.attribute(x, target=targets.tolist(), n_steps=args.steps, internal_batch_size=args.rows)
        result["captum_median_s"], result["captum_min_s"] = (t / 1e3 for t in latency_ms(call, None, args.repeats))
        theirs = call(None).detach().numpy().transpose(0, 2, 3, 1)

    if args.only != "captum":
        ig = IntegratedGradients(module, preprocess=preprocess, n_steps=args.steps, internal_batch_size=args.rows)
        prepared = ig.prepare(images, targets)
        start = time.perf_counter()
        ig._jitted.lower(ig.probe.state, *prepared).compile()
        result["jaxdl_compile_s"] = time.perf_counter() - start
        call = lambda _: jax.block_until_ready(ig._jitted(ig.probe.state, *prepared))
        result["jaxdl_median_s"], result["jaxdl_min_s"] = (t / 1e3 for t in latency_ms(call, None, args.repeats))
        ours = np.asarray(call(None))
        if theirs is not None:
            result["speedup_median"] = result["captum_median_s"] / result["jaxdl_median_s"]
            result["speedup_min"] = result["captum_min_s"] / result["jaxdl_min_s"]
            result["min_r"] = min(float(np.corrcoef(a.ravel(), b.ravel())[0, 1]) for a, b in zip(ours, theirs))
    report(result, args.out)


if __name__ == "__main__":
    main()
