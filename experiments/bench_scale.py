"""ResNet-50 and ViT-B/16 at 224 px on one accelerator: jaxdl's train step against PyTorch's best ordinary form.

    python experiments/bench_scale.py --out experiments/results/bench_scale_h200.json          # on a GPU
    python experiments/bench_scale.py --input-folder /tmp/jpegs ...   # + the step fed by the streaming pipeline
    python experiments/bench_scale.py --make-jpegs /tmp/jpegs --count 4096                      # such a folder
    python experiments/bench_scale.py --smoke                                                   # CPU: every path, tiny

jaxdl: the zoo's `resnet50_imagenet` / `vit_imagenet` through the trainer's own pieces (`models.build` with
bfloat16 compute and float32 parameters, `optim.build`, `make_train_step`: uint8 images normalised inside the
jitted step, state donated), on synthetic uint8 batches already on the device. PyTorch: torchvision's
`resnet50` / `vit_b_16` with AMP bfloat16 autocast, `channels_last` for the CNN, `torch.compile`, a fused
optimizer, the same uint8 batches normalised in the step. The same optimiser on both sides (SGD momentum for
ResNet-50, AdamW for ViT). Each peer runs in its own process; compilation and warm-up are excluded; several
rounds, median images/s. MFU = images/s x 6 x forward multiply-adds (`jaxdl.flops`, analytic, equal to
torchvision's published counts) over the card's dense bf16 peak, and over a bf16 matrix product measured here.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Dense bf16 tensor-core peaks (FLOP/s) from the vendor datasheets, SXM parts.
PEAK_BF16 = {"H100": 989.4e12, "H200": 989.4e12, "A100": 312e12}
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclasses.dataclass(frozen=True)
class Net:
    zoo: str  # conf/model entry
    optimizer: str  # conf/optimizer entry, mirrored on the PyTorch side
    torchvision: str
    channels_last: bool


NETS = {
    "resnet50": Net("resnet50_imagenet", "momentum", "resnet50", channels_last=True),
    "vit_b16": Net("vit_imagenet", "adamw", "vit_b_16", channels_last=False),
}


# Issue 27's attempts, one jaxdl row each (`--variants base,explicit_attention,...`), measured against the same
# PyTorch rows. XLA flag sets go into XLA_FLAGS of the worker process before JAX starts; an unknown flag fails
# that row alone.
VARIANTS: dict[str, dict] = {
    "base": {},
    "explicit_attention": {"attention": "explicit"},  # ViT: softmax(QK^T)V written out (the pre-issue-27 path)
    "bf16_params": {"params_bf16": True},  # parameters and optimiser state in bfloat16 too: bf16 end to end
    "remat": {"remat": True},  # recompute each block's activations in the backward pass
    "bn_bf16_stats": {"bn_bf16_stats": True},  # ResNet: BN statistics reduced from bf16 (no f32 copy of x)
    "xla_autotune4": {"xla_flags": "--xla_gpu_autotune_level=4"},
    "xla_no_triton_gemm": {"xla_flags": "--xla_gpu_enable_triton_gemm=false"},
    "xla_cudnn_layer_norm": {"xla_flags": "--xla_gpu_enable_cudnn_layer_norm=true"},
    "xla_cudnn_fusion": {"xla_flags": "--xla_gpu_cudnn_gemm_fusion_level=2"},
    "xla_latency_hiding": {"xla_flags": "--xla_gpu_enable_latency_hiding_scheduler=true"},
}
# Kernel names of fused attention in a GPU trace (cuDNN's flash / fmha kernels, Pallas / Triton flash attention).
FUSED_ATTENTION_KERNELS = ("fmha", "flash", "cudnn_attn", "sdpa")


def net_config(net: Net, *extra: str):
    from jaxdl.config import compose_config

    return compose_config("config", [f"model={net.zoo}", f"optimizer={net.optimizer}", *extra])


def endless_batches(loader, batch: int):
    """A streamed loader's training batches, epoch after epoch, for as many steps as a benchmark takes."""
    epoch = 0
    while True:
        epoch += 1
        yield from loader.train_batches(batch, 0, epoch)


def timed_rounds(run, steps: int, rounds: int, batch: int) -> list[float]:
    """Images/s of `rounds` calls `run(steps)`, each ending with the device idle."""
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        run(steps)
        rates.append(steps * batch / (time.perf_counter() - start))
    return rates


def matmul_tflops(jnp, jax) -> float:
    """A large bf16 matrix product's rate on this device: the ceiling actually reachable here."""
    n = 8192 if jax.default_backend() == "gpu" else 1024
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.bfloat16)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.bfloat16)
    product = jax.jit(lambda a, b: a @ b)
    product(a, b).block_until_ready()
    start, reps = time.perf_counter(), 20
    for _ in range(reps):
        out = product(a, b)
    out.block_until_ready()
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e12


def jaxdl_worker(args: argparse.Namespace) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxdl import models, optim
    from jaxdl.data.pipeline import make_preprocess
    from jaxdl.flops import module_macs
    from jaxdl.parallel import batch_sharded, data_mesh
    from jaxdl.profiling import TracedSteps, top_ops
    from jaxdl.steps import init_state, make_train_step, split_model

    net = NETS[args.model]
    cfg = net_config(net, "data=folder")
    mesh = data_mesh()
    spec = models.InputSpec((224, 224), 3, 1000)
    macs = module_macs(lambda: models.build(cfg.model, spec, seed=0), (1, 224, 224, 3))
    variant = VARIANTS[args.variant]
    model = models.build(cfg.model, spec, seed=0, dtype=jnp.bfloat16)
    apply_variant(model, variant)
    tx = optim.build(cfg.optimizer, 10_000, 1)
    train_def, _, params, rest = split_model(model)
    if variant.get("params_bf16"):
        params = jax.tree.map(lambda p: p.astype(jnp.bfloat16), params)
    state = init_state(params, rest, tx, mesh)
    preprocess = make_preprocess(cfg.data, spec.size, IMAGENET_MEAN, IMAGENET_STD, streamed=True)
    step = make_train_step(train_def, tx, preprocess, mesh, seed=0, compute_dtype=jnp.bfloat16)
    rng = np.random.default_rng(0)
    sharding = batch_sharded(mesh)
    batches = [
        (
            jax.device_put(rng.integers(0, 256, (args.batch, 224, 224, 3), np.uint8), sharding),
            jax.device_put(rng.integers(0, 1000, args.batch).astype(np.int32), sharding),
        )
        for _ in range(4)
    ]
    losses = []

    def run(n: int, feed=None) -> None:
        nonlocal state
        for i in range(n):
            images, labels = next(feed) if feed else batches[i % len(batches)]
            state, metrics = step(state, images, labels)
        if n:
            losses.append(float(metrics["loss_sum"]) / args.batch)  # a host read: the device has finished

    start = time.perf_counter()
    run(1)
    compile_s = time.perf_counter() - start
    run(args.warmup)
    rates = timed_rounds(run, args.steps, args.rounds, args.batch)
    hlo = step.lower(state, *batches[0]).compile().as_text()
    result = {
        "peer": "jaxdl" if args.variant == "base" else f"jaxdl[{args.variant}]",
        "variant": args.variant,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "fused_attention_in_hlo": "__cudnn$fmha" in hlo,
        "model": args.model,
        "batch": args.batch,
        "devices": mesh.size,
        "device_kind": jax.devices()[0].device_kind,
        "jax": jax.__version__,
        "compile_and_first_step_s": compile_s,
        "images_per_s": rates,
        "final_loss": losses[-1],
        "forward_macs_per_image": macs,
        "matmul_bf16_tflops": matmul_tflops(jnp, jax),
    }
    if args.profile_dir:
        traced = TracedSteps(step, Path(args.profile_dir) / f"jaxdl_{args.model}", skip=0, count=3)
        for i in range(3):
            state, _ = traced(state, *batches[i])
        result["top_ops"] = top_ops(traced.trace_dir, limit=40)
        names = [name.lower() for name, _, _ in result["top_ops"]]
        result["fused_attention_in_trace"] = any(k in n for n in names for k in FUSED_ATTENTION_KERNELS)
    if args.input_folder:
        result.update(streamed_input(args, cfg, mesh, run))
    return result


def apply_variant(model, variant: dict) -> None:
    """Switch the built model to an attempt's form: explicit attention, remat'd blocks, bf16 BN reductions."""
    from flax import nnx

    from jaxdl.models import resnet, transformer

    if variant.get("attention") == "explicit":
        for _, module in nnx.iter_modules(model):
            if isinstance(module, transformer.SelfAttention):
                module.fused = False
    if variant.get("remat"):
        for cls in (transformer.EncoderBlock, resnet.BasicBlock, resnet.Bottleneck):
            cls.__call__ = nnx.remat(cls.__call__)
    if variant.get("bn_bf16_stats"):
        for _, module in nnx.iter_modules(model):
            if isinstance(module, nnx.BatchNorm):
                module.force_float32_reductions = False


def streamed_input(args: argparse.Namespace, cfg, mesh, run) -> dict:
    """The same step fed by `data=folder` streaming from JPEG files: images/s, and the share of step time lost."""
    from omegaconf import open_dict

    from jaxdl.data import load_dataset
    from jaxdl.data.stream import loader_for

    with open_dict(cfg):
        cfg.data.update(root=args.input_folder, stream=True, channels=3)
    train = load_dataset(cfg.data).train
    loader = loader_for(train, mesh)

    batches = endless_batches(loader, args.batch)
    run(args.warmup, batches)
    rates = timed_rounds(lambda n: run(n, batches), args.steps, args.rounds, args.batch)
    return {"streamed_images_per_s": rates, "input_workers": train.workers, "input_files": len(train)}


def torch_worker(args: argparse.Namespace) -> dict:
    import torch
    import torch.nn.functional as F
    import torchvision

    net = NETS[args.model]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    layout = torch.channels_last if net.channels_last else torch.contiguous_format
    model = getattr(torchvision.models, net.torchvision)(num_classes=1000).to(device, memory_format=layout)
    o = net_config(net).optimizer
    fused = {"fused": True} if device == "cuda" else {}
    if net.optimizer == "momentum":
        opt = torch.optim.SGD(model.parameters(), lr=o.learning_rate, momentum=o.momentum, weight_decay=o.weight_decay, **fused)
    else:
        opt = torch.optim.AdamW(
            model.parameters(), lr=o.learning_rate, betas=(o.b1, o.b2), eps=o.eps, weight_decay=o.weight_decay, **fused
        )
    forward = torch.compile(model) if args.torch_compile else model
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1) * 255
    gen = torch.Generator(device).manual_seed(0)
    batches = [
        (
            torch.randint(0, 256, (args.batch, 3, 224, 224), generator=gen, device=device, dtype=torch.uint8).contiguous(
                memory_format=layout
            ),
            torch.randint(0, 1000, (args.batch,), generator=gen, device=device),
        )
        for _ in range(4)
    ]
    losses = []

    def run(n: int) -> None:
        for i in range(n):
            images, labels = batches[i % len(batches)]
            x = ((images.float() - mean) / std).contiguous(memory_format=layout)
            with torch.autocast(device, dtype=torch.bfloat16):
                loss = F.cross_entropy(forward(x).float(), labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if n:
            losses.append(float(loss.detach()))  # a host read: waits for the device

    start = time.perf_counter()
    run(1)
    compile_s = time.perf_counter() - start
    run(args.warmup)
    rates = timed_rounds(run, args.steps, args.rounds, args.batch)
    return {
        "peer": "pytorch_compiled" if args.torch_compile else "pytorch_eager",
        "model": args.model,
        "batch": args.batch,
        "torch": torch.__version__,
        "device_kind": torch.cuda.get_device_name() if device == "cuda" else platform.processor(),
        "compile_and_first_step_s": compile_s,
        "images_per_s": rates,
        "final_loss": losses[-1],
    }


def make_jpegs(folder: Path, count: int) -> None:
    """`count` photo-like JPEGs (crops of scikit-image's photographs, ImageNet-like sizes) in 10 class folders
    under `train/`, and one per class under `val/` and `test/` (the benchmark reads only `train/`)."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor() as pool:
        list(pool.map(_write_jpeg, [folder] * (count + 20), range(count + 20), chunksize=64))


def _write_jpeg(folder: Path, i: int) -> None:
    import numpy as np
    from PIL import Image
    from skimage import data

    photos = ("astronaut", "chelsea", "coffee", "rocket")
    rng = np.random.default_rng(i)
    photo = getattr(data, photos[i % len(photos)])()
    h, w = photo.shape[:2]
    ch, cw = int(h * rng.uniform(0.6, 1.0)), int(w * rng.uniform(0.6, 1.0))
    y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    crop = photo[y : y + ch, x : x + cw].astype(np.float32) * rng.uniform(0.8, 1.2, 3)
    image = Image.fromarray(np.clip(crop, 0, 255).astype(np.uint8)).resize(
        (int(rng.integers(400, 640)), int(rng.integers(300, 480)))
    )
    split = "val" if i < 10 else "test" if i < 20 else "train"
    path = folder / split / f"class_{i % 10}" / f"img_{i:06d}.jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, quality=90)


def run_worker(args: argparse.Namespace, peer: str, model: str, variant: str = "base") -> dict:
    command = [sys.executable, __file__, "--worker", peer, "--model", model, "--variant", variant]
    env = dict(os.environ)
    flags = VARIANTS[variant].get("xla_flags")
    if flags:
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {flags}".strip()
    for key in ("batch", "steps", "rounds", "warmup", "profile_dir", "input_folder"):
        value = getattr(args, key)
        if value is not None:
            command += [f"--{key.replace('_', '-')}", str(value)]
    command += ["--torch-compile" if args.torch_compile else "--no-torch-compile"]
    start = time.perf_counter()
    try:
        out = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=args.worker_timeout, env=env)
    except subprocess.TimeoutExpired:
        return {
            "peer": peer,
            "model": model,
            "variant": variant,
            "error": f"no result within --worker-timeout {args.worker_timeout} s",
        }
    if out.returncode != 0:
        print(out.stderr[-3000:], file=sys.stderr)
        return {
            "peer": peer,
            "model": model,
            "variant": variant,
            "error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed",
        }
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["worker_wall_s"] = time.perf_counter() - start
    return result


def summarise(results: list[dict]) -> dict:
    """Per model: median images/s of each peer, and for each jaxdl row (an attempt) its MFU and ratio to each peer."""
    table = {}
    for model in dict.fromkeys(r["model"] for r in results):
        rows = {r["peer"]: r for r in results if r["model"] == model and "images_per_s" in r}
        entry = {peer: statistics.median(r["images_per_s"]) for peer, r in rows.items()}
        peers = [p for p in rows if not p.startswith("jaxdl")]
        for name, jax_row in rows.items():
            if not name.startswith("jaxdl"):
                continue
            step_flops = 6 * jax_row["forward_macs_per_image"]
            achieved = entry[name] * step_flops
            peak = next((v for k, v in PEAK_BF16.items() if k in jax_row["device_kind"]), None)
            entry["train_step_gflops_per_image"] = step_flops / 1e9
            entry[f"{name}_tflops"] = achieved / 1e12
            entry[f"{name}_mfu_of_datasheet_bf16"] = achieved / peak if peak else None
            entry[f"{name}_share_of_measured_matmul"] = achieved / (jax_row["matmul_bf16_tflops"] * 1e12)
            for peer in peers:
                entry[f"ratio_{name}_vs_{peer}"] = entry[name] / entry[peer]
                entry[f"{peer}_mfu_of_datasheet_bf16"] = entry[peer] * step_flops / peak if peak else None
            if "streamed_images_per_s" in jax_row:
                streamed = statistics.median(jax_row["streamed_images_per_s"])
                entry[f"{name}_streamed"] = streamed
                entry[f"{name}_input_loss_share"] = 1 - streamed / entry[name]
        table[model] = entry
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet50,vit_b16")
    parser.add_argument("--peers", default="jaxdl,pytorch")
    parser.add_argument("--batch", type=int, default=256, help="global batch of every peer")
    parser.add_argument("--steps", type=int, default=20, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=5, help="steps after the first (compiling) one, not timed")
    parser.add_argument("--variants", default="base", help=f"jaxdl rows, comma-separated, of: {', '.join(VARIANTS)}")
    parser.add_argument("--torch-compile", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--worker-timeout", type=float, default=None, help="seconds one peer's process may take")
    parser.add_argument("--profile-dir", default=None, help="jaxdl: trace 3 steps here and report the top ops")
    parser.add_argument("--input-folder", default=None, help="jaxdl: also time the step fed from this JPEG class-folder tree")
    parser.add_argument("--make-jpegs", type=Path, default=None, help="write a JPEG class-folder tree here and stop")
    parser.add_argument("--count", type=int, default=4096)
    parser.add_argument("--smoke", action="store_true", help="batch 2, 1 step, 1 round, PyTorch eager: checks every path runs")
    parser.add_argument("--out", default=None)
    parser.add_argument("--worker", choices=("jaxdl", "pytorch"), help=argparse.SUPPRESS)
    parser.add_argument("--model", choices=tuple(NETS), help=argparse.SUPPRESS)
    parser.add_argument("--variant", choices=tuple(VARIANTS), default="base", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.smoke:
        args.batch, args.steps, args.rounds, args.warmup, args.torch_compile = 2, 1, 1, 1, False
    if args.worker:
        worker = jaxdl_worker if args.worker == "jaxdl" else torch_worker
        print(json.dumps(worker(args)))
        return
    if args.make_jpegs:
        make_jpegs(args.make_jpegs, args.count)
        return
    variants = args.variants.split(",")
    unknown = sorted(set(variants) - VARIANTS.keys())
    if unknown:
        parser.error(f"unknown --variants {unknown}; choose from {', '.join(VARIANTS)}")
    results = []
    for model in args.models.split(","):
        rows = [(p, v) for p in args.peers.split(",") for v in (variants if p == "jaxdl" else ["base"])]
        for peer, variant in rows:
            results.append(run_worker(args, peer, model, variant))
            row = results[-1]
            rate = statistics.median(row["images_per_s"]) if "images_per_s" in row else row.get("error")
            print(f"{model:9s} {row['peer']:30s} {rate}", flush=True)
            summary = {
                "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
                "command": " ".join(sys.argv),
                "results": results,
                "summary": summarise(results),
            }
            if args.out:  # after every peer: a budget cut short still leaves the rows measured
                Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary["summary"], indent=2))


if __name__ == "__main__":
    main()
