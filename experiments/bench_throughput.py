"""Training throughput of LeNet-5 (modern): jaxdl vs a naive Flax NNX loop vs PyTorch, on CPU or GPU.

All three train the same architecture with Adam on Fashion-MNIST batches (128 by default).
Each measurement runs in a fresh worker process (JAX's and PyTorch's thread pools would
otherwise compete inside one process), and the peers alternate round by round so that
machine load affects them alike. Reports samples/s per round, the median ratios and, on a
GPU, the model FLOPs utilisation (XLA:CPU's FLOP count of jaxdl's train step over the card's
dense bf16 peak). PyTorch runs on the GPU when JAX does.

    python experiments/bench_throughput.py --steps 200 --rounds 3
    python experiments/bench_throughput.py --steps 2000 --rounds 3 --batch 128 --bf16   # GPU
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from hydra import compose, initialize_config_dir

from jaxdl import models, optim
from jaxdl.config import CONF_DIR
from jaxdl.data import load_dataset
from jaxdl.data.pipeline import Loader, epoch_order
from jaxdl.parallel import data_mesh
from jaxdl.steps import cross_entropy, init_state, make_train_step, split_model
from jaxdl.data.pipeline import make_preprocess

# Dense bf16 tensor-core peaks (FLOP/s) from the vendor datasheets, SXM parts.
PEAK_BF16 = {"H100": 989.4e12, "H200": 989.4e12, "A100": 312e12}


def jaxdl_runner(cfg, data, steps, batch, bf16=False):
    """The framework's path: device-resident data, jitted pure step with donated state."""
    mesh = data_mesh()
    spec = models.InputSpec((28, 28), 1, 10)
    dtype = jnp.bfloat16 if bf16 else jnp.float32
    preprocess = make_preprocess(cfg.data, spec.size, *data.channel_stats())
    model = models.build(cfg.model, spec, seed=0, dtype=dtype)
    tx = optim.build(cfg.optimizer, steps, 1)
    train_def, _, params, rest = split_model(model)
    state = init_state(params, rest, tx, mesh)
    step = make_train_step(train_def, tx, preprocess, mesh, seed=0, compute_dtype=dtype)
    loader = Loader(data.train, mesh)
    per_epoch = len(data.train) // batch
    order = [idx for epoch in range(1, 2 + (steps + 40) // per_epoch) for idx in epoch_order(len(data.train), batch, 0, epoch)]

    def flops() -> float:  # exact on XLA:CPU only
        return float(step.lower(state, *loader.batch(order[0])).compile().cost_analysis()["flops"])

    def run(n):
        nonlocal state
        for i in range(n):
            images, labels = loader.batch(order[i])
            state, metrics = step(state, images, labels)
        jax.block_until_ready(metrics)
        return float(metrics["loss_sum"]) / batch

    return run, flops


def naive_nnx_runner(cfg, data, batch):
    """What a first NNX loop looks like: nnx.jit over the module and nnx.Optimizer, numpy batches fed each step."""
    model = models.build(cfg.model, models.InputSpec((28, 28), 1, 10), seed=0)
    optimizer = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)
    mean, std = data.channel_stats()
    images = (data.train.images.astype(np.float32) / 255.0 - mean[0]) / std[0]
    labels = data.train.labels
    rng = np.random.default_rng(0)

    @nnx.jit
    def step(model, optimizer, x, y):
        def loss_fn(model):
            return cross_entropy(model(x), y).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    def run(n):
        for _ in range(n):
            idx = rng.integers(0, len(labels), batch)
            loss = step(model, optimizer, images[idx], labels[idx])
        return float(loss)

    return run


def torch_runner(data, batch):
    import torch
    from torch import nn

    device = "cuda" if jax.default_backend() == "gpu" and torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 20, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(20, 50, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(800, 500),
        nn.ReLU(),
        nn.Linear(500, 10),
    ).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    mean, std = data.channel_stats()
    images = (
        torch.from_numpy((data.train.images.astype(np.float32) / 255.0 - mean[0]) / std[0])
        .permute(0, 3, 1, 2)
        .contiguous()
        .to(device)
    )
    labels = torch.from_numpy(data.train.labels.astype(np.int64)).to(device)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator(device).manual_seed(0)

    def run(n):
        for _ in range(n):
            idx = torch.randint(0, len(labels), (batch,), generator=gen, device=device)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(images[idx]), labels[idx])
            loss.backward()
            opt.step()
        return float(loss)  # a host read: waits for the GPU too

    return run, {"torch": torch.__version__, "torch_threads": torch.get_num_threads(), "torch_device": device}


def timed(run, steps, batch):
    start = time.perf_counter()
    loss = run(steps)
    return steps * batch / (time.perf_counter() - start), loss


RUNNERS = ("jaxdl", "naive_nnx", "pytorch")
WORKERS = (*RUNNERS, "jaxdl_flops")


def train_step_flops(batch: int, bf16: bool) -> float:
    """FLOPs of jaxdl's train step as XLA:CPU counts them: XLA:GPU leaves the cuDNN convolutions out of its count."""
    command = [sys.executable, __file__, "--worker", "jaxdl_flops", "--steps", "1", "--batch", str(batch)] + ["--bf16"] * bf16
    out = subprocess.run(command, capture_output=True, text=True, check=True, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    return json.loads(out.stdout.strip().splitlines()[-1])["train_step_flops"]


def worker(name: str, steps: int, batch: int, bf16: bool) -> dict:
    """Warm up one peer, then time `steps` training steps of it (`jaxdl_flops`: only count its step's FLOPs)."""
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["data=fashion_mnist", "model=lenet5", "optimizer=adam"])
    data = load_dataset(cfg.data)
    extra = {}
    if name == "pytorch":
        run, extra = torch_runner(data, batch)
    elif name == "jaxdl_flops":
        return {"train_step_flops": jaxdl_runner(cfg, data, steps, batch, bf16)[1]()}
    elif name == "jaxdl":
        run, _ = jaxdl_runner(cfg, data, steps, batch, bf16)
    else:
        run = naive_nnx_runner(cfg, data, batch)
    run(20)  # compile and warm up
    rate, loss = timed(run, steps, batch)
    return {"rate": rate, "loss": loss, **extra}


def mfu(samples_per_s: float, step_flops: float, batch: int) -> dict:
    """Achieved FLOP/s and its share of the card's dense bf16 peak (empty off a known GPU)."""
    achieved = samples_per_s / batch * step_flops
    kind = jax.devices()[0].device_kind
    peak = next((v for k, v in PEAK_BF16.items() if k in kind), None)
    if jax.default_backend() != "gpu" or peak is None:
        return {"achieved_tflops": achieved / 1e12}
    return {"device_kind": kind, "achieved_tflops": achieved / 1e12, "peak_bf16_tflops": peak / 1e12, "mfu": achieved / peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--bf16", action="store_true", help="jaxdl computes in bfloat16 (trainer.compute_dtype)")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument("--worker", choices=WORKERS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.steps, args.batch, args.bf16)))
        return

    rates, extra = {name: [] for name in RUNNERS}, {}
    for r in range(args.rounds):
        for name in RUNNERS:
            command = [sys.executable, __file__, "--worker", name, "--steps", str(args.steps), "--batch", str(args.batch)]
            out = subprocess.run(command + ["--bf16"] * args.bf16, capture_output=True, text=True, check=True)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            rates[name].append(result.pop("rate"))
            extra.update({k: v for k, v in result.items() if k != "loss"})
            print(f"round {r + 1}: {name:10s} {rates[name][-1]:8.0f} samples/s (loss {result['loss']:.3f})", flush=True)
    median = {name: statistics.median(v) for name, v in rates.items()}
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, JAX on {jax.devices()[0].platform}",
        "jax": jax.__version__,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        **extra,
        "batch": args.batch,
        "jaxdl_compute": "bfloat16" if args.bf16 else "float32",
        "steps_per_round": args.steps,
        "rounds": args.rounds,
        "samples_per_s": rates,
        "median_samples_per_s": median,
        "ratio_jaxdl_vs_pytorch": median["jaxdl"] / median["pytorch"],
        "ratio_naive_nnx_vs_pytorch": median["naive_nnx"] / median["pytorch"],
        "jaxdl_utilisation": mfu(median["jaxdl"], train_step_flops(args.batch, args.bf16), args.batch),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
