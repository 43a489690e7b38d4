"""Training throughput and inference latency: jaxdl vs a naive Flax NNX loop vs PyTorch, on CPU or GPU.

All three train the same architecture (LeNet-5, or the zoo's small ResNet-18 with `--model resnet18`)
with Adam on Fashion-MNIST batches (128 by default). On a CPU jaxdl runs as its apps do: one XLA
device per usable core (`--cpu-devices auto`), the batch split over them; PyTorch uses its default
thread count (the same cores). `--latency` times eval-mode inference at batch 1 and 256 instead.
Each measurement runs in a fresh worker process (JAX's and PyTorch's thread pools would
otherwise compete inside one process), and the peers alternate round by round so that
machine load affects them alike. Reports samples/s per round, the median ratios and, on a
GPU, the model FLOPs utilisation (XLA:CPU's FLOP count of jaxdl's train step over the card's
dense bf16 peak). PyTorch runs on the GPU when JAX does.

    python experiments/bench_throughput.py --steps 200 --rounds 3
    python experiments/bench_throughput.py --model resnet18 --batch 32 --steps 10 --rounds 2 --peers jaxdl,pytorch
    python experiments/bench_throughput.py --latency --rounds 2          # ms per batch of 1 and 256
    python experiments/bench_throughput.py --conv-grad patches ...      # jaxdl.models.conv.use_patch_grad
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

from jaxdl import models, optim
from jaxdl.config import compose_config
from jaxdl.data import load_dataset
from jaxdl.data.pipeline import Loader, epoch_order
from jaxdl.models.conv import use_patch_grad
from jaxdl.cpu_devices import use_cpu_devices
from jaxdl.parallel import data_mesh
from jaxdl.steps import cross_entropy, init_state, make_predict, make_train_step, split_model
from jaxdl.data.pipeline import make_preprocess

# Dense bf16 tensor-core peaks (FLOP/s) from the vendor datasheets, SXM parts.
PEAK_BF16 = {"H100": 989.4e12, "H200": 989.4e12, "A100": 312e12}


SPEC = models.InputSpec((28, 28), 1, 10)
# Host syncs every 20 steps, as jaxdl's trainer (trainer.log_every). With 2 XLA CPU devices, 100+ steps
# dispatched without a sync deadlocked in the gradient all-reduce on this machine under load (RESULTS.md).
SYNC_EVERY = 20


def jaxdl_model(cfg, bf16: bool, conv_grad: str):
    model = models.build(cfg.model, SPEC, seed=0, dtype=jnp.bfloat16 if bf16 else jnp.float32)
    return use_patch_grad(model) if conv_grad == "patches" else model


def jaxdl_runner(cfg, data, steps, batch, bf16=False, conv_grad="native"):
    """The framework's path: device-resident data, jitted pure step with donated state."""
    mesh = data_mesh()
    spec = SPEC
    dtype = jnp.bfloat16 if bf16 else jnp.float32
    preprocess = make_preprocess(cfg.data, spec.size, *data.channel_stats())
    model = jaxdl_model(cfg, bf16, conv_grad)
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
            if (i + 1) % SYNC_EVERY == 0:  # as the trainer does (trainer.log_every); see SYNC_EVERY
                jax.block_until_ready(metrics)
        jax.block_until_ready(metrics)
        return float(metrics["loss_sum"]) / batch

    return run, flops


def naive_nnx_runner(cfg, data, batch):
    """What a first NNX loop looks like: nnx.jit over the module and nnx.Optimizer, numpy batches fed each step."""
    model = models.build(cfg.model, SPEC, seed=0)
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


def torch_net(name: str):
    """PyTorch's twin of the zoo model: LeNet-5 (modern) or the small ResNet-18 (3x3/1 stem, no max pool)."""
    from torch import nn

    if name == "resnet18":
        import torchvision

        net = torchvision.models.resnet18(num_classes=10)
        net.conv1 = nn.Conv2d(1, 64, 3, 1, 1, bias=False)
        net.maxpool = nn.Identity()
        return net
    return nn.Sequential(
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
    )


def torch_images(data, device):
    import torch

    mean, std = data.channel_stats()
    normalised = (data.train.images.astype(np.float32) / 255.0 - mean[0]) / std[0]
    return torch.from_numpy(normalised).permute(0, 3, 1, 2).contiguous().to(device)


def torch_device() -> str:
    import torch

    return "cuda" if jax.default_backend() == "gpu" and torch.cuda.is_available() else "cpu"


def torch_runner(data, batch, model="lenet5"):
    import torch
    from torch import nn

    device = torch_device()
    torch.manual_seed(0)
    net = torch_net(model).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    images = torch_images(data, device)
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


def report(result: dict, out: str | None) -> None:
    """The benchmark's figures on stdout, and in `out` as JSON when given (experiments/results/*.json)."""
    print(json.dumps(result, indent=2))
    if out:
        with open(out, "w") as f:
            json.dump(result, f, indent=2)


def latency_ms(forward, images, repeats: int) -> tuple[float, float]:
    """(median, fastest) milliseconds of `forward(images)` after a warm-up call."""
    forward(images)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        forward(images)
        times.append(1e3 * (time.perf_counter() - start))
    return float(np.median(times)), float(min(times))


def jaxdl_latency(cfg, data, repeats: int) -> dict:
    """Eval-mode inference through the framework's predict step: batch 256 split over every device, batch 1 on one."""
    preprocess = make_preprocess(cfg.data, SPEC.size, *data.channel_stats())
    _, eval_def, params, rest = split_model(models.build(cfg.model, SPEC, seed=0))
    out = {}
    for size in (1, 256):
        mesh = data_mesh() if size % jax.device_count() == 0 else jax.make_mesh((1,), ("data",), devices=jax.devices()[:1])
        predict = make_predict(eval_def, preprocess, mesh)
        images = jax.device_put(data.test.images[:size], jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data")))
        out[size] = latency_ms(lambda x: jax.block_until_ready(predict(params, rest, x)), images, repeats)
    return out


def torch_latency(data, model: str, repeats: int) -> dict:
    import torch

    device = torch_device()
    net = torch_net(model).to(device).eval()
    images = torch_images(data, device)
    out = {}
    with torch.inference_mode():
        for size in (1, 256):
            x = images[:size]
            out[size] = latency_ms(lambda x: float(net(x)[0, 0]), x, repeats)  # a host read waits for the GPU
    return out


def timed(run, steps, batch):
    start = time.perf_counter()
    loss = run(steps)
    return steps * batch / (time.perf_counter() - start), loss


RUNNERS = ("jaxdl", "naive_nnx", "pytorch")
WORKERS = (*RUNNERS, "jaxdl_flops")


def train_step_flops(args) -> float:
    """FLOPs of jaxdl's train step as XLA:CPU counts them: XLA:GPU leaves the cuDNN convolutions out of its count."""
    out = subprocess.run(
        worker_command(args, "jaxdl_flops", steps=1),
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["train_step_flops"]


def worker_command(args, name: str, steps: int | None = None) -> list[str]:
    options = ["--worker", name, "--steps", str(steps or args.steps), "--batch", str(args.batch), "--model", args.model]
    options += ["--cpu-devices", str(args.cpu_devices), "--conv-grad", args.conv_grad, "--warmup", str(args.warmup)]
    options += ["--repeats", str(args.repeats)] + ["--bf16"] * args.bf16 + ["--latency"] * args.latency
    return [sys.executable, __file__, *options]


def worker(args) -> dict:
    """Warm up one peer, then time `steps` training steps of it (`jaxdl_flops`: only count its step's FLOPs;
    `--latency`: time inference instead)."""
    name, steps, batch, bf16 = args.worker, args.steps, args.batch, args.bf16
    if name != "pytorch":  # as the apps do, before JAX starts its CPU backend
        use_cpu_devices(args.cpu_devices, (batch, 256) if args.latency else (batch,))
    cfg = compose_config("config", ["data=fashion_mnist", f"model={args.model}", "optimizer=adam"])
    data = load_dataset(cfg.data)
    extra = {} if name == "pytorch" else {"jax_devices": jax.device_count()}
    if args.latency:
        times = torch_latency(data, args.model, args.repeats) if name == "pytorch" else jaxdl_latency(cfg, data, args.repeats)
        return {"latency_ms": times, **extra}
    if name == "pytorch":
        run, extra = torch_runner(data, batch, args.model)
    elif name == "jaxdl_flops":
        return {"train_step_flops": jaxdl_runner(cfg, data, steps, batch, bf16, args.conv_grad)[1]()}
    elif name == "jaxdl":
        run, _ = jaxdl_runner(cfg, data, steps, batch, bf16, args.conv_grad)
    else:
        run = naive_nnx_runner(cfg, data, batch)
    run(args.warmup)  # compile and warm up
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


def run_worker(args, name: str) -> dict:
    out = subprocess.run(worker_command(args, name), capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{name} worker failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("lenet5", "resnet18"), default="lenet5")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20, help="untimed steps first (compilation)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--peers", default=",".join(RUNNERS), help="comma-separated subset of " + ",".join(RUNNERS))
    parser.add_argument("--cpu-devices", default="auto", help="jaxdl's XLA CPU devices, as trainer.cpu_devices")
    parser.add_argument("--conv-grad", choices=("native", "patches"), default="native", help="jaxdl's conv kernel gradient")
    parser.add_argument("--bf16", action="store_true", help="jaxdl computes in bfloat16 (trainer.compute_dtype)")
    parser.add_argument("--latency", action="store_true", help="inference latency at batch 1 and 256 instead of training")
    parser.add_argument("--repeats", type=int, default=50, help="timed calls per latency measurement")
    parser.add_argument("--skip-flops", action="store_true", help="do not count the train step's FLOPs (MFU)")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument("--worker", choices=WORKERS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return
    peers = [p for p in args.peers.split(",") if p not in ("naive_nnx",) or not args.latency]
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, JAX on {jax.devices()[0].platform}",
        "jax": jax.__version__,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "model": args.model,
        "cpu_devices": args.cpu_devices,
        "conv_grad": args.conv_grad,
        "rounds": args.rounds,
        "load_average_start": load_average(),
    }
    if args.latency:
        times = {name: [] for name in peers}
        for r in range(args.rounds):
            for name in peers:
                out = run_worker(args, name)
                times[name].append(out.pop("latency_ms"))
                result.update(out)
                cells = ", ".join(f"batch {b}: {m:.2f} ms (best {f:.2f})" for b, (m, f) in times[name][-1].items())
                print(f"round {r + 1}: {name:10s} {cells}", flush=True)
        best = {name: {b: min(t[b][1] for t in v) for b in v[0]} for name, v in times.items()}
        median = {name: {b: statistics.median(t[b][0] for t in v) for b in v[0]} for name, v in times.items()}
        result.update(latency_ms=times, median_ms=median, best_ms=best)
        if {"jaxdl", "pytorch"} <= set(peers):
            result["speedup_jaxdl_vs_pytorch_median"] = {b: median["pytorch"][b] / median["jaxdl"][b] for b in median["jaxdl"]}
            result["speedup_jaxdl_vs_pytorch_best"] = {b: best["pytorch"][b] / best["jaxdl"][b] for b in best["jaxdl"]}
    else:
        rates = {name: [] for name in peers}
        for r in range(args.rounds):
            for name in peers:
                out = run_worker(args, name)
                rates[name].append(out.pop("rate"))
                result.update({k: v for k, v in out.items() if k != "loss"})
                print(f"round {r + 1}: {name:10s} {rates[name][-1]:8.0f} samples/s (loss {out['loss']:.3f})", flush=True)
        median = {name: statistics.median(v) for name, v in rates.items()}
        result.update(
            batch=args.batch,
            jaxdl_compute="bfloat16" if args.bf16 else "float32",
            steps_per_round=args.steps,
            samples_per_s=rates,
            median_samples_per_s=median,
        )
        for name in ("jaxdl", "naive_nnx"):
            if name in median and "pytorch" in median:
                result[f"ratio_{name}_vs_pytorch"] = median[name] / median["pytorch"]
        if "jaxdl" in median and args.model == "lenet5" and not args.skip_flops:
            result["jaxdl_utilisation"] = mfu(median["jaxdl"], train_step_flops(args), args.batch)
    result["load_average_end"] = load_average()
    report(result, args.out)


if __name__ == "__main__":
    main()
