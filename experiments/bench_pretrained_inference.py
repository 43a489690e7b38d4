"""Inference of an imported torchvision network: jaxdl's jitted forward vs PyTorch eager, same weights, same device.

    python experiments/bench_pretrained_inference.py --arch resnet50 --batches 1 32 --rounds 5

The torch model is torchvision's `--arch` with random weights and batch-norm statistics (no download);
`jaxdl.pretrained.import_model` turns it into the zoo model. Both take the same float32 batch of
normalised 224x224 images (PyTorch: `torch.inference_mode()`, NCHW; jaxdl: the imported module in
eval mode under `jax.jit`, NHWC) and are timed alternately, round by round, after a warm-up call
(compilation excluded); per batch size the median milliseconds per call and the ratio. On the GPU both
run there (PyTorch on `cuda` when JAX's backend is a GPU).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import jax
import numpy as np
import torch
from flax import nnx

from jaxdl.pretrained import import_model
from jaxdl.pretrained.verify import random_torch_model


def timed_ms(call) -> float:
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="PyTorch threads (default: its own choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = "cuda" if jax.default_backend() == "gpu" and torch.cuda.is_available() else "cpu"
    source = f"torchvision:{args.arch}"
    torch_model = random_torch_model(source).eval().to(device)
    module, card = import_model(source, torch_model=torch_model.cpu())
    torch_model.to(device)
    graphdef, state = nnx.split(module)
    forward = jax.jit(lambda state, x: nnx.merge(graphdef, state)(x))
    size = card.spec.size
    rows = []
    for batch in args.batches:
        x = np.random.default_rng(batch).standard_normal((batch, *size, 3), np.float32)
        x_jax = jax.device_put(x)
        x_torch = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous().to(device)

        def ours():
            forward(state, x_jax).block_until_ready()

        def theirs():
            with torch.inference_mode():
                torch_model(x_torch)
            if device == "cuda":
                torch.cuda.synchronize()

        ours(), theirs()  # compile, warm up
        gap = float(np.abs(np.asarray(forward(state, x_jax)) - torch_model(x_torch).detach().cpu().numpy()).max())
        jaxdl_ms, torch_ms = [], []
        for _ in range(args.rounds):  # alternate, so a busy moment of the machine hits both
            jaxdl_ms.append(timed_ms(ours))
            torch_ms.append(timed_ms(theirs))
        row = {
            "batch": batch,
            "jaxdl_ms": statistics.median(jaxdl_ms),
            "pytorch_eager_ms": statistics.median(torch_ms),
            "max_abs_logit_gap": gap,
        }
        row["jaxdl_speedup"] = row["pytorch_eager_ms"] / row["jaxdl_ms"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(
        json.dumps(
            {
                "source": source,
                "machine": f"{platform.machine()}, {os.cpu_count()} cores, JAX on {jax.default_backend()}",
                "jax": jax.__version__,
                "torch": torch.__version__,
                "torch_threads": torch.get_num_threads(),
                "rounds": args.rounds,
                "rows": rows,
            }
        )
    )


if __name__ == "__main__":
    main()
