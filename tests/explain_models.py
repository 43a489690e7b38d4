"""Tiny hand-built models whose explanations are known, shared by the explain tests."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


class Identity(nnx.Module):
    """A parameter-free layer to probe: its output is its input."""

    def __call__(self, x):
        return x


class PooledLinear(nnx.Module):
    """logits = W^T mean_{space}(body(x)): Grad-CAM of class t is exactly relu(x @ W[:, t]), min-max scaled.

    Works for images (B, H, W, C) and sequences (B, T, C).
    """

    def __init__(self, channels: int, classes: int, rngs: nnx.Rngs):
        self.body = Identity()
        self.head = nnx.Linear(channels, classes, rngs=rngs)

    def __call__(self, x):
        h = self.body(x)
        return self.head(h.reshape(h.shape[0], -1, h.shape[-1]).mean(1))


class MaskedSum(nnx.Module):
    """Class 0's logit is the sum of the pixels inside `mask`, class 1's is zero: the mask is the perfect saliency."""

    def __init__(self, mask: np.ndarray, scale: float = 1.0, offset: float = 0.0):
        self.mask = nnx.Param(jnp.asarray(mask, jnp.float32) * scale)
        self.offset = offset

    def __call__(self, x):
        score = (x.sum(-1) * self.mask[...]).sum((1, 2)) - self.offset
        return jnp.stack([score, jnp.zeros_like(score)], -1)


class SmallConvNet(nnx.Module):
    def __init__(self, rngs: nnx.Rngs, channels: int = 1, classes: int = 4):
        self.conv1 = nnx.Conv(channels, 6, (3, 3), rngs=rngs)
        self.conv2 = nnx.Conv(6, 8, (3, 3), rngs=rngs)
        self.head = nnx.Linear(8, classes, rngs=rngs)

    def __call__(self, x):
        x = jax.nn.relu(self.conv1(x))
        x = jax.nn.relu(self.conv2(x))
        return self.head(x.mean((1, 2)))


class TinyLSTM(nnx.Module):
    """A sequence classifier on (N, 1, T, C) signals: LSTM over time, mean over steps, linear head."""

    def __init__(self, channels: int, hidden: int, classes: int, rngs: nnx.Rngs):
        self.lstm = nnx.RNN(nnx.LSTMCell(channels, hidden, rngs=rngs))
        self.head = nnx.Linear(hidden, classes, rngs=rngs)

    def __call__(self, x):
        return self.head(self.lstm(x[:, 0]).mean(1))


class DigitsConvNet(nnx.Module):
    """Two 3x3 conv layers and a linear head on mean-pooled features, for 8x8 digits."""

    def __init__(self, rngs: nnx.Rngs, widths: tuple[int, int] = (16, 32), classes: int = 10):
        self.conv1 = nnx.Conv(1, widths[0], (3, 3), rngs=rngs)
        self.conv2 = nnx.Conv(widths[0], widths[1], (3, 3), rngs=rngs)
        self.head = nnx.Linear(widths[1], classes, rngs=rngs)

    def __call__(self, x):
        x = jax.nn.relu(self.conv1(x))
        x = jax.nn.relu(self.conv2(x))
        return self.head(x.mean((1, 2)))


@functools.lru_cache(maxsize=1)
def trained_digits_convnet(steps: int = 300) -> tuple[DigitsConvNet, np.ndarray, np.ndarray]:
    """A DigitsConvNet trained on the first 1,500 digits (~90% held-out accuracy in a few seconds),
    and the 297 held-out images (B, 8, 8, 1) in [0, 1] with their labels."""
    import optax
    from sklearn.datasets import load_digits

    digits = load_digits()
    images, labels = (digits.images / 16.0).astype(np.float32)[..., None], digits.target
    model = DigitsConvNet(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer, x, y):
        loss = lambda m: optax.softmax_cross_entropy_with_integer_labels(m(x), y).mean()
        optimizer.update(model, nnx.grad(loss)(model))

    rng = np.random.default_rng(0)
    for _ in range(steps):
        batch = rng.integers(0, 1500, 128)
        step(model, optimizer, images[batch], labels[batch])
    return model, images[1500:], labels[1500:]
