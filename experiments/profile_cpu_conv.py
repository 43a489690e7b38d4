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

Random data, jitted, median of repeated calls after a warm-up, compilation excluded.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

DIMENSIONS = ("NHWC", "HWIO", "NHWC")


def median_ms(fn, *args, repeats: int = 40) -> float:
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def conv_xla(x: jax.Array, kernel: jax.Array) -> jax.Array:
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), "VALID", dimension_numbers=DIMENSIONS)


def conv_im2col(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """The same VALID conv as one matmul over patches built from shifted slices."""
    kh, kw, cin, cout = kernel.shape
    b, h, w, _ = x.shape
    oh, ow = h - kh + 1, w - kw + 1
    patches = jnp.concatenate([x[:, i : i + oh, j : j + ow, :] for i in range(kh) for j in range(kw)], axis=-1)
    return (patches.reshape(-1, kh * kw * cin) @ kernel.reshape(-1, cout)).reshape(b, oh, ow, cout)


def lenet_logits(conv, params, x: jax.Array) -> jax.Array:
    k1, b1, k2, b2, w3, b3, w4, b4 = params
    pool = lambda a: jax.lax.reduce_window(a, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    h = pool(jax.nn.relu(conv(x, k1) + b1))
    h = pool(jax.nn.relu(conv(h, k2) + b2))
    return jax.nn.relu(h.reshape(len(x), -1) @ w3 + b3) @ w4 + b4


def main() -> None:
    rng = np.random.default_rng(0)
    normal = lambda *shape: jnp.asarray(rng.normal(size=shape).astype(np.float32) * 0.05)

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
    params = (
        normal(5, 5, 1, 20),
        normal(20),
        normal(5, 5, 20, 50),
        normal(50),
        normal(800, 500),
        normal(500),
        normal(500, 10),
        normal(10),
    )
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


if __name__ == "__main__":
    main()
