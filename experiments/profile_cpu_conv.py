"""Where LeNet-5's convolutions spend their time on XLA:CPU: the figures behind RESULTS.md's CPU notes.

    python experiments/profile_cpu_conv.py

1. A one-input-channel 5x5 conv on 28x28 at batch 256, for several filter counts
   (why channel-pruning LeNet's conv1 makes it slower).
2. LeNet-5's two convs at batch 128: forward, kernel gradient, input gradient
   (where the CPU training step goes).
3. The whole LeNet-5 forward and loss gradient at batch 128 with XLA's conv against an
   im2col lowering (shifted slices concatenated, one matmul): the alternative that was tried.
4. The LeNet-5 forward on 1,000 images (what LIME pays per explained image) in GFLOP/s, against
   a 2048x2048 fp32 matmul, the best rate XLA:CPU reaches on this machine.
5. Layout: the two convs in NHWC/HWIO against NCHW/OIHW dimension numbers (forward and both gradients).
6. Kernel gradient: XLA's against conv_general_dilated_patches + one matmul and against
   `jaxdl.models.conv.patch_grad_conv`'s (patches from strided slices + one matmul).
7. The LeNet-5 loss gradient, native conv against patch_grad_conv, at batch 128 and 64 (the per-device batch
   of 128 over two devices).

    python experiments/profile_cpu_conv.py --parts 5,6,7
    python experiments/profile_cpu_conv.py --flags   # part 7's gradient under each XLA:CPU flag, one process each

Random data, jitted, median (and best, which load from other jobs disturbs least) of repeated calls after
a warm-up, compilation excluded.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from jaxdl.models.conv import patch_grad_conv  # noqa: E402

DIMENSIONS = ("NHWC", "HWIO", "NHWC")


def call_times_ms(fn, *args, repeats: int = 40) -> np.ndarray:
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return 1e3 * np.asarray(times)


def median_ms(fn, *args, repeats: int = 40) -> float:
    return float(np.median(call_times_ms(fn, *args, repeats=repeats)))


def timing(fn, *args, repeats: int = 40) -> str:
    """'median / best' ms."""
    times = call_times_ms(fn, *args, repeats=repeats)
    return f"{np.median(times):6.2f} / {times.min():6.2f}"


def conv_xla(x: jax.Array, kernel: jax.Array) -> jax.Array:
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), "VALID", dimension_numbers=DIMENSIONS)


def conv_im2col(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """The same VALID conv as one matmul over patches built from shifted slices."""
    kh, kw, cin, cout = kernel.shape
    b, h, w, _ = x.shape
    oh, ow = h - kh + 1, w - kw + 1
    patches = jnp.concatenate([x[:, i : i + oh, j : j + ow, :] for i in range(kh) for j in range(kw)], axis=-1)
    return (patches.reshape(-1, kh * kw * cin) @ kernel.reshape(-1, cout)).reshape(b, oh, ow, cout)


def conv_nchw(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """The same conv with NCHW input and OIHW kernel (the caller passes them in that layout)."""
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), "VALID", dimension_numbers=("NCHW", "OIHW", "NCHW"))


def conv_patch_grad(x: jax.Array, kernel: jax.Array) -> jax.Array:
    return patch_grad_conv(x, kernel, (1, 1), "VALID", dimension_numbers=DIMENSIONS)


def kernel_grad_patches(x: jax.Array, grad: jax.Array, window: tuple[int, int]) -> jax.Array:
    """A VALID stride-1 conv's kernel gradient as jax.lax.conv_general_dilated_patches + one matmul."""
    patches = jax.lax.conv_general_dilated_patches(x, window, (1, 1), "VALID", dimension_numbers=DIMENSIONS)
    kernel = patches.reshape(-1, patches.shape[-1]).T @ grad.reshape(-1, grad.shape[-1])  # (C * kh * kw, O)
    return kernel.reshape(x.shape[-1], *window, -1).transpose(1, 2, 0, 3)


def lenet_logits(conv, params, x: jax.Array) -> jax.Array:
    k1, b1, k2, b2, w3, b3, w4, b4 = params
    pool = lambda a: jax.lax.reduce_window(a, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    h = pool(jax.nn.relu(conv(x, k1) + b1))
    h = pool(jax.nn.relu(conv(h, k2) + b2))
    return jax.nn.relu(h.reshape(len(x), -1) @ w3 + b3) @ w4 + b4


def lenet_params(normal) -> tuple:
    return (
        normal(5, 5, 1, 20),
        normal(20),
        normal(5, 5, 20, 50),
        normal(50),
        normal(800, 500),
        normal(500),
        normal(500, 10),
        normal(10),
    )


def lenet_grad(conv):
    loss = lambda p, x, y: -jnp.mean(jax.nn.log_softmax(lenet_logits(conv, p, x))[jnp.arange(len(y)), y])
    return jax.jit(jax.grad(loss))


LENET_CONVS = (("conv1 1->20, 28x28", (28, 28, 1), (5, 5, 1, 20)), ("conv2 20->50, 12x12", (12, 12, 20), (5, 5, 20, 50)))


def part_1_to_4(normal, rng) -> None:
    print("1. one-input-channel 5x5 conv, 28x28, batch 256 (ms)")
    x = normal(256, 28, 28, 1)
    forward = jax.jit(conv_xla)
    for filters in (4, 8, 12, 16, 20, 24, 32):
        print(f"   {filters:3d} filters  {median_ms(forward, x, normal(5, 5, 1, filters)):6.2f}")

    print("2. LeNet-5 convolutions, batch 128 (ms): forward / kernel gradient / input gradient")
    for name, x, kernel in (
        ("conv1 1->20, 28x28", normal(128, 28, 28, 1), normal(5, 5, 1, 20)),
        ("conv2 20->50, 12x12", normal(128, 12, 12, 20), normal(5, 5, 20, 50)),
    ):
        d_kernel = jax.jit(jax.grad(lambda k, x: conv_xla(x, k).sum()))
        d_input = jax.jit(jax.grad(lambda x, k: conv_xla(x, k).sum()))
        print(
            f"   {name:20s} {median_ms(forward, x, kernel):6.2f} / {median_ms(d_kernel, kernel, x):6.2f} / "
            f"{median_ms(d_input, x, kernel):6.2f}"
        )

    print("3. LeNet-5 at batch 128 (ms): forward / loss gradient, XLA conv vs im2col")
    params = lenet_params(normal)
    x, labels = normal(128, 28, 28, 1), jnp.asarray(rng.integers(0, 10, 128))
    gradients = {}
    for name, conv in (("xla", conv_xla), ("im2col", conv_im2col)):
        loss = lambda p, x, y, conv=conv: -jnp.mean(jax.nn.log_softmax(lenet_logits(conv, p, x))[jnp.arange(len(y)), y])
        grad = jax.jit(jax.grad(loss))
        gradients[name] = grad(params, x, labels)
        logits = jax.jit(lambda p, x, conv=conv: lenet_logits(conv, p, x))
        print(f"   {name:7s} {median_ms(logits, params, x):6.2f} / {median_ms(grad, params, x, labels):6.2f}")
    diff = max(float(jnp.abs(a - b).max()) for a, b in zip(gradients["xla"], gradients["im2col"]))
    print(f"   largest gradient difference between the two: {diff:.1e}")

    print("4. GFLOP/s: LeNet-5 forward on 1,000 images vs a 2048x2048 matmul")
    forward = jax.jit(lambda p, x: lenet_logits(conv_xla, p, x))
    for name, fn, args in (
        ("LeNet-5 forward, batch 1000", forward, (params, normal(1000, 28, 28, 1))),
        ("matmul 2048x2048x2048", jax.jit(jnp.matmul), (normal(2048, 2048), normal(2048, 2048))),
    ):
        gflop = fn.lower(*args).compile().cost_analysis()["flops"] / 1e9
        ms = median_ms(fn, *args)
        print(f"   {name:28s} {gflop:6.2f} GFLOP in {ms:6.2f} ms = {gflop / ms * 1e3:6.1f} GFLOP/s")


def part_5(normal) -> None:
    print("5. layout, batch 128 (median / best ms): forward | kernel gradient | input gradient")
    for name, image, kernel_shape in LENET_CONVS:
        x, kernel = normal(128, *image), normal(*kernel_shape)
        for layout, conv, xx, kk in (
            ("NHWC", conv_xla, x, kernel),
            ("NCHW", conv_nchw, jnp.transpose(x, (0, 3, 1, 2)), jnp.transpose(kernel, (3, 2, 0, 1))),
        ):
            d_kernel = jax.jit(jax.grad(lambda k, x, conv=conv: conv(x, k).sum()))
            d_input = jax.jit(jax.grad(lambda x, k, conv=conv: conv(x, k).sum()))
            print(
                f"   {name:20s} {layout} {timing(jax.jit(conv), xx, kk)} | {timing(d_kernel, kk, xx)} | {timing(d_input, xx, kk)}"
            )


def part_6(normal) -> None:
    print("6. kernel gradient, batch 128 (median / best ms): XLA | conv_general_dilated_patches + matmul | patch_grad_conv")
    for name, image, kernel_shape in LENET_CONVS:
        x, kernel = normal(128, *image), normal(*kernel_shape)
        grad = normal(128, image[0] - 4, image[1] - 4, kernel_shape[-1])
        vjp = lambda conv: jax.jit(lambda k, x, g: jax.vjp(lambda k: conv(x, k), k)[1](g)[0])
        patches = jax.jit(lambda k, x, g: kernel_grad_patches(x, g, kernel_shape[:2]))
        reference = vjp(conv_xla)(kernel, x, grad)
        for fn in (patches, vjp(conv_patch_grad)):
            assert np.allclose(fn(kernel, x, grad), reference, rtol=1e-4, atol=1e-4)
        print(
            f"   {name:20s} {timing(vjp(conv_xla), kernel, x, grad)} | {timing(patches, kernel, x, grad)} | "
            f"{timing(vjp(conv_patch_grad), kernel, x, grad)}"
        )


def part_7(normal, rng, batches=(128, 64)) -> None:
    print("7. LeNet-5 loss gradient (median / best ms): native conv | patch_grad_conv")
    params = lenet_params(normal)
    for batch in batches:
        x, labels = normal(batch, 28, 28, 1), jnp.asarray(rng.integers(0, 10, batch))
        print(
            f"   batch {batch:4d} {timing(lenet_grad(conv_xla), params, x, labels)} | "
            f"{timing(lenet_grad(conv_patch_grad), params, x, labels)}",
            flush=True,
        )


# XLA:CPU flags of jax 0.10.2 that touch convolutions, threading or the runtime (from its flag list).
FLAG_SETTINGS = (
    "",
    "--xla_cpu_use_thunk_runtime=false",
    "--xla_cpu_multi_thread_eigen=false",
    "--xla_cpu_use_onednn=true",
    "--xla_cpu_use_xnnpack=true",
    "--xla_cpu_experimental_xnn_graph_fusion_mode=XNN_GRAPH_FUSION_MODE_GREEDY",
    "--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION",
    "--xla_cpu_enable_concurrency_optimized_scheduler=true",
    "--xla_cpu_prefer_vector_width=512",
)


def flags_sweep(rounds: int) -> None:
    """Part 7's native gradient at batch 64 under each flag setting, each in a fresh process, rounds interleaved."""
    for r in range(rounds):
        for flags in FLAG_SETTINGS:
            env = {**os.environ, "XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu"}
            out = subprocess.run(
                [sys.executable, __file__, "--parts", "7", "--batches", "64"], env=env, capture_output=True, text=True
            )
            line = (out.stdout.strip().splitlines() or ["(no output)"])[-1] if out.returncode == 0 else out.stderr.strip()[-200:]
            print(f"round {r + 1} {flags or '(default)':80s} {line.strip()}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="1,2,3,4,5,6,7")
    parser.add_argument("--batches", default="128,64", help="part 7's batch sizes")
    parser.add_argument("--flags", action="store_true", help="part 7 under each XLA:CPU flag setting")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if args.flags:
        flags_sweep(args.rounds)
        return
    rng = np.random.default_rng(0)
    normal = lambda *shape: jnp.asarray(rng.normal(size=shape).astype(np.float32) * 0.05)
    parts = set(args.parts.split(","))
    if parts & {"1", "2", "3", "4"}:
        part_1_to_4(normal, rng)
    if "5" in parts:
        part_5(normal)
    if "6" in parts:
        part_6(normal)
    if "7" in parts:
        part_7(normal, rng, tuple(int(b) for b in args.batches.split(",")))


if __name__ == "__main__":
    main()
