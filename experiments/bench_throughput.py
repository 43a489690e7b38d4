"""Training throughput of LeNet-5 (modern) at batch 128: jaxdl vs a naive Flax NNX loop vs PyTorch.

All three train the same architecture with Adam on Fashion-MNIST batches of 128. Each
measurement runs in a fresh worker process (JAX's and PyTorch's thread pools would
otherwise compete inside one process), and the peers alternate round by round so that
machine load affects them alike. Reports samples/s per round and the median ratios.

    python experiments/bench_throughput.py --steps 200 --rounds 3
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
from jaxdl.train import make_preprocess

BATCH = 128


def jaxdl_runner(cfg, data, steps):
    """The framework's path: device-resident data, jitted pure step with donated state."""
    mesh = data_mesh()
    spec = models.InputSpec((28, 28), 1, 10)
    preprocess = make_preprocess(cfg.data, spec.size, *data.channel_stats())
    model = models.build(cfg.model, spec, seed=0)
    tx = optim.build(cfg.optimizer, steps, 1)
    train_def, _, params, rest = split_model(model)
    state = init_state(params, rest, tx, mesh)
    step = make_train_step(train_def, tx, preprocess, mesh, seed=0)
    loader = Loader(data.train, mesh)
    order = [idx for epoch in range(1, 100) for idx in epoch_order(len(data.train), BATCH, 0, epoch)]

    def run(n):
        nonlocal state
        for i in range(n):
            images, labels = loader.batch(order[i])
            state, metrics = step(state, images, labels)
        jax.block_until_ready(metrics)
        return float(metrics["loss_sum"]) / BATCH

    return run


def naive_nnx_runner(cfg, data, steps):
    """What a first NNX loop looks like: nnx.jit over the module and nnx.Optimizer, numpy batches fed each step."""
    model = models.build(cfg.model, models.InputSpec((28, 28), 1, 10), seed=0)
    optimizer = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)
    mean, std = data.channel_stats()
    images = ((data.train.images.astype(np.float32) / 255.0 - mean[0]) / std[0])
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
            idx = rng.integers(0, len(labels), BATCH)
            loss = step(model, optimizer, images[idx], labels[idx])
        return float(loss)

    return run


def torch_runner(data):
    import torch
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 20, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(20, 50, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(800, 500), nn.ReLU(), nn.Linear(500, 10),
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    mean, std = data.channel_stats()
    images = torch.from_numpy((data.train.images.astype(np.float32) / 255.0 - mean[0]) / std[0]).permute(0, 3, 1, 2).contiguous()
    labels = torch.from_numpy(data.train.labels.astype(np.int64))
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(0)

    def run(n):
        for _ in range(n):
            idx = torch.randint(0, len(labels), (BATCH,), generator=gen)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(images[idx]), labels[idx])
            loss.backward()
            opt.step()
        return float(loss)

    return run, torch.__version__, torch.get_num_threads()


def timed(run, steps):
    start = time.perf_counter()
    loss = run(steps)
    return steps * BATCH / (time.perf_counter() - start), loss


RUNNERS = ("jaxdl", "naive_nnx", "pytorch")


def worker(name: str, steps: int) -> dict:
    """Warm up one peer, then time `steps` training steps of it."""
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["data=fashion_mnist", "model=lenet5", "optimizer=adam"])
    data = load_dataset(cfg.data)
    extra = {}
    if name == "pytorch":
        run, extra["torch"], extra["torch_threads"] = torch_runner(data)
    else:
        run = (jaxdl_runner if name == "jaxdl" else naive_nnx_runner)(cfg, data, steps)
    run(20)  # compile and warm up
    rate, loss = timed(run, steps)
    return {"rate": rate, "loss": loss, **extra}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument("--worker", choices=RUNNERS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.steps)))
        return

    rates, extra = {name: [] for name in RUNNERS}, {}
    for r in range(args.rounds):
        for name in RUNNERS:
            out = subprocess.run([sys.executable, __file__, "--worker", name, "--steps", str(args.steps)],
                                 capture_output=True, text=True, check=True)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            rates[name].append(result.pop("rate"))
            extra.update({k: v for k, v in result.items() if k != "loss"})
            print(f"round {r + 1}: {name:10s} {rates[name][-1]:8.0f} samples/s (loss {result['loss']:.3f})", flush=True)
    median = {name: statistics.median(v) for name, v in rates.items()}
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, JAX on {jax.devices()[0].platform}",
        "jax": jax.__version__, "xla_flags": os.environ.get("XLA_FLAGS", ""), **extra,
        "batch": BATCH, "steps_per_round": args.steps, "rounds": args.rounds,
        "samples_per_s": rates, "median_samples_per_s": median,
        "ratio_jaxdl_vs_pytorch": median["jaxdl"] / median["pytorch"],
        "ratio_naive_nnx_vs_pytorch": median["naive_nnx"] / median["pytorch"],
    }
    print(json.dumps(result, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
