"""Gradient attributions (captum's core): saliency, input x gradient, Integrated Gradients, SmoothGrad /
VarGrad on any of them, and GradientSHAP.

Each explainer returns (B, H, W) maps (channels summed, signed) and keeps the full signed (B, H, W, C)
attribution in `raw`, as captum returns it. Scores are the target's logit, as captum's on a model that
returns logits. Integrated Gradients scans over chunks of path points (`internal_batch_size` rows per
forward pass), so its memory does not grow with `n_steps`: captum batches every step at once by default,
the most reported cause of its out-of-memory errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxdl.registry import call_with_options
from xai.explain.conv_grad import with_input_grad_convs
from xai.explain.inputs import ExplainError, check_targets
from xai.explain.probe import Preprocess, Probe, resolve_targets

RIEMANN = ("riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid")
BASELINES = ("black", "blurred", "uniform")


def path_points(n_steps: int, method: str = "gausslegendre") -> tuple[np.ndarray, np.ndarray]:
    """(alphas, step sizes) of captum's quadratures of the path integral over [0, 1]."""
    if method == "gausslegendre":
        if n_steps < 1:
            raise ExplainError(f"integrated_gradients n_steps must be at least 1, got {n_steps}")
        nodes, weights = np.polynomial.legendre.leggauss(n_steps)
        return 0.5 * (1 + nodes), 0.5 * weights
    if method not in RIEMANN:
        raise ExplainError(f"integrated_gradients method must be gausslegendre or one of {', '.join(RIEMANN)}, got '{method}'")
    if n_steps < 2:
        raise ExplainError(f"integrated_gradients n_steps must be at least 2 for {method}, got {n_steps}")
    sizes = np.full(n_steps, 1 / n_steps)
    alphas = {
        "riemann_left": np.linspace(0, 1 - 1 / n_steps, n_steps),
        "riemann_right": np.linspace(1 / n_steps, 1, n_steps),
        "riemann_middle": np.linspace(1 / (2 * n_steps), 1 - 1 / (2 * n_steps), n_steps),
        "riemann_trapezoid": np.linspace(0, 1, n_steps),
    }[method]
    if method == "riemann_trapezoid":
        sizes[[0, -1]] /= 2
    return alphas, sizes


def _read_baseline(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """A given baseline image: a .npy array (H, W, C) or (N, H, W, C) in [0, 1], or an image file."""
    if not path.is_file():
        raise ExplainError(f"baseline must be one of {', '.join(BASELINES)} or an image / .npy file; {path} is neither")
    if path.suffix == ".npy":
        array = np.load(path).astype(np.float32)
    else:
        from PIL import Image

        with Image.open(path) as image:
            image = image.convert("L" if shape[-1] == 1 else "RGB").resize((shape[2], shape[1]), Image.BILINEAR)
            array = np.asarray(image, np.float32).reshape(shape[1:]) / 255
    try:
        return np.broadcast_to(array, shape)
    except ValueError:
        raise ExplainError(f"baseline {path} has shape {array.shape}; the images are {shape[1:]}") from None


def make_baseline(kind: Any, images: np.ndarray, key: jax.Array, blur_sigma: float | None = None) -> np.ndarray:
    """The reference images of a path method: black (captum's zeros), a Gaussian blur of each image
    (Sturmfels et al. 2020; sigma default a tenth of the shorter side), uniform noise in [0, 1], or a given image."""
    if isinstance(kind, (int, float)):
        return np.full_like(images, float(kind))
    if kind == "black":
        return np.zeros_like(images)
    if kind == "uniform":
        return np.asarray(jax.random.uniform(key, images.shape, jnp.float32))
    if kind == "blurred":
        from scipy.ndimage import gaussian_filter

        sigma = blur_sigma if blur_sigma is not None else min(images.shape[1:3]) / 10
        return gaussian_filter(images, sigma=(0, sigma, sigma, 0), mode="nearest").astype(np.float32)
    return _read_baseline(Path(str(kind)), images.shape)


class Gradients:
    """Base of the gradient family: `attribute(state, images, targets, baselines, key) -> (B, H, W, C)`,
    a pure function the noise tunnel can call on noisy images inside its own jit."""

    baseline: Any = None  # path methods: what `make_baseline` builds

    def __init__(self, model: nnx.Module, *, preprocess: Preprocess | None = None, seed: int = 0, blur_sigma=None):
        self.probe = Probe(with_input_grad_convs(model), (), preprocess)  # input gradients on XLA:CPU's fast convs
        self.seed, self.blur_sigma = seed, blur_sigma
        self.raw: np.ndarray | None = None
        self._jitted = jax.jit(self.attribute)

    def gradients(self, state: nnx.State, images: jax.Array, targets: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(target logits, their gradient w.r.t. the images): one forward, one backward pass."""

        def scores(x, state):  # the state is a primal so the merged model lives in the vjp's trace (nnx.RNN needs it)
            logits = self.probe.fn(state, x, None)[0]
            return jnp.take_along_axis(logits, targets[:, None], 1)[:, 0]

        out, vjp = jax.vjp(scores, images, state)
        return out, vjp(jnp.ones_like(out))[0]  # the state's cotangent is dead code under jit

    def attribute(self, state, images, targets, baselines, key):
        raise NotImplementedError

    def baselines(self, images: np.ndarray, key: jax.Array) -> jax.Array:
        return jnp.asarray(make_baseline(self.baseline or "black", images, key, self.blur_sigma))

    def prepare(self, images: Any, targets: Any) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
        """Checked images, targets resolved on the clean images (-1: predicted class), baselines and a key."""
        images = self.probe.check(images)
        targets = check_targets(targets, len(images), self.probe.num_classes)
        targets = resolve_targets(targets, self.probe.logits(images))
        key, sub = jax.random.split(jax.random.key(self.seed))
        return images, targets, self.baselines(np.asarray(images), sub), key

    def __call__(self, images: Any, targets: Any = None) -> np.ndarray:
        images, targets, baselines, key = self.prepare(images, targets)
        self.raw = np.asarray(self._jitted(self.probe.state, images, targets, baselines, key))
        return self.raw.sum(-1)


class Saliency(Gradients):
    """The signed gradient of the target logit (Simonyan et al. 2014; captum's Saliency with abs=False)."""

    def attribute(self, state, images, targets, baselines, key):
        return self.gradients(state, images, targets)[1]


class InputXGradient(Gradients):
    """Image times gradient (Shrikumar et al. 2016)."""

    def attribute(self, state, images, targets, baselines, key):
        return images * self.gradients(state, images, targets)[1]


class IntegratedGradients(Gradients):
    """Integrated Gradients (Sundararajan et al. 2017) with captum's defaults: black baseline, 50 steps, Gauss-Legendre.

    `completeness` after a call: per image, sum of attributions - (f(x) - f(baseline)) and that gap
    relative to |f(x) - f(baseline)| (the axiom says 0; the quadrature error shrinks with n_steps).
    """

    def __init__(
        self,
        model: nnx.Module,
        *,
        preprocess: Preprocess | None = None,
        baseline: Any = "black",
        n_steps: int = 50,
        method: str = "gausslegendre",
        internal_batch_size: int = 64,
        blur_sigma: float | None = None,
        seed: int = 0,
    ):
        super().__init__(model, preprocess=preprocess, seed=seed, blur_sigma=blur_sigma)
        self.baseline, self.n_steps, self.method = baseline, int(n_steps), method
        self.alphas, self.sizes = path_points(self.n_steps, method)
        if internal_batch_size < 1:
            raise ExplainError(f"integrated_gradients internal_batch_size must be positive, got {internal_batch_size}")
        self.internal_batch_size = int(internal_batch_size)
        self.completeness: dict[str, list[float]] | None = None
        self._ends = jax.jit(lambda state, x, b, t: self.gradients(state, jnp.concatenate([x, b]), jnp.tile(t, 2))[0])

    def attribute(self, state, images, targets, baselines, key):
        """(x - baseline) * sum_k w_k grad f(baseline + a_k (x - baseline)), `steps` path points per forward pass."""
        chunks = -(-self.n_steps // max(1, self.internal_batch_size // len(images)))
        steps = -(-self.n_steps // chunks)  # balanced chunks: never more padded path points than chunks - 1
        pad = chunks * steps - self.n_steps
        alphas = jnp.asarray(np.pad(self.alphas, (0, pad)).reshape(chunks, steps), jnp.float32)
        sizes = jnp.asarray(np.pad(self.sizes, (0, pad)).reshape(chunks, steps), jnp.float32)  # padding weighs 0
        delta, rows = images - baselines, jnp.tile(targets, steps)

        def step(carry, chunk):
            state, total = carry
            a, w = chunk
            path = (baselines[None] + a[:, None, None, None, None] * delta[None]).reshape(-1, *images.shape[1:])
            grads = self.gradients(state, path, rows)[1].reshape(steps, *images.shape)
            return (state, total + jnp.tensordot(w, grads, 1)), None

        (_, total), _ = jax.lax.scan(step, (state, jnp.zeros_like(images)), (alphas, sizes))
        return delta * total

    def __call__(self, images: Any, targets: Any = None) -> np.ndarray:
        images, targets, baselines, key = self.prepare(images, targets)
        self.raw = np.asarray(self._jitted(self.probe.state, images, targets, baselines, key))
        ends = np.asarray(self._ends(self.probe.state, images, baselines, targets)).reshape(2, -1)
        expected = ends[0] - ends[1]
        gap = self.raw.reshape(len(images), -1).sum(1) - expected
        self.completeness = {
            "gap": gap.tolist(),
            "relative_gap": (np.abs(gap) / np.maximum(np.abs(expected), 1e-12)).tolist(),
        }
        return self.raw.sum(-1)


class GradientShap(Gradients):
    """GradientSHAP as captum's: per sample a random baseline, Gaussian noise of `stdevs` on the input and a
    uniform alpha; attribution (x - baseline) * grad at the interpolated point, averaged over `n_samples`.
    `baseline`: uniform (a fresh noise image per sample), black, blurred or a given image."""

    def __init__(
        self,
        model: nnx.Module,
        *,
        preprocess: Preprocess | None = None,
        baseline: Any = "uniform",
        n_samples: int = 5,
        stdevs: float = 0.0,
        blur_sigma: float | None = None,
        seed: int = 0,
    ):
        super().__init__(model, preprocess=preprocess, seed=seed, blur_sigma=blur_sigma)
        if n_samples < 1:
            raise ExplainError(f"gradient_shap n_samples must be positive, got {n_samples}")
        self.baseline, self.n_samples, self.stdevs = baseline, int(n_samples), float(stdevs)

    def attribute(self, state, images, targets, baselines, key):
        def sample(carry, key):
            state, total = carry
            k_base, k_noise, k_alpha = jax.random.split(key, 3)
            base = jax.random.uniform(k_base, images.shape) if self.baseline == "uniform" else baselines
            noisy = images + self.stdevs * jax.random.normal(k_noise, images.shape)
            alpha = jax.random.uniform(k_alpha, (len(images), 1, 1, 1))
            grads = self.gradients(state, base + alpha * (noisy - base), targets)[1]
            return (state, total + (noisy - base) * grads), None

        keys = jax.random.split(key, self.n_samples)
        (_, total), _ = jax.lax.scan(sample, (state, jnp.zeros_like(images)), keys)
        return total / self.n_samples


BASES: dict[str, Callable[..., Gradients]] = {
    "saliency": Saliency,
    "input_x_gradient": InputXGradient,
    "integrated_gradients": IntegratedGradients,
}


class NoiseTunnel(Gradients):
    """SmoothGrad (Smilkov et al. 2017: the mean attribution over noisy copies) or VarGrad (their variance)
    of any gradient method, as captum's NoiseTunnel. The noise's standard deviation is `noise_level` times
    each image's range (max - min), the SmoothGrad paper's parametrisation; `base_options` go to the base method."""

    kind = "smoothgrad"

    def __init__(
        self,
        model: nnx.Module,
        *,
        preprocess: Preprocess | None = None,
        base: str = "saliency",
        nt_samples: int = 50,
        noise_level: float = 0.15,
        base_options: dict | None = None,
        seed: int = 0,
    ):
        if base not in BASES:
            raise ExplainError(f"{self.kind} base must be one of {', '.join(BASES)}, got '{base}'")
        if nt_samples < 1 or noise_level < 0:
            raise ExplainError(f"{self.kind} needs nt_samples >= 1 and noise_level >= 0, got {nt_samples} and {noise_level}")
        what = f"{self.kind} base '{base}'"
        fixed = {"model": model, "preprocess": preprocess, "seed": seed}
        self.base = call_with_options(BASES[base], dict(base_options or {}), what, **fixed)
        super().__init__(model, preprocess=preprocess, seed=seed)
        self.probe = self.base.probe  # one state: the sanity test's randomised weights reach the base method
        self.nt_samples, self.noise_level = int(nt_samples), float(noise_level)

    def baselines(self, images: np.ndarray, key: jax.Array) -> jax.Array:
        return self.base.baselines(images, key)

    def stdevs(self, images: jax.Array) -> jax.Array:
        """(B, 1, 1, 1) noise standard deviations: `noise_level` x each image's range."""
        flat = images.reshape(len(images), -1)
        return (self.noise_level * (flat.max(1) - flat.min(1))).reshape(-1, 1, 1, 1)

    def attribute(self, state, images, targets, baselines, key):
        sigma = self.stdevs(images)

        def sample(carry, key):
            state, total, squares = carry
            k_noise, k_base = jax.random.split(key)
            noisy = images + sigma * jax.random.normal(k_noise, images.shape)
            a = self.base.attribute(state, noisy, targets, baselines, k_base)
            return (state, total + a, squares + a * a), None

        zeros = jnp.zeros_like(images)
        (_, total, squares), _ = jax.lax.scan(sample, (state, zeros, zeros), jax.random.split(key, self.nt_samples))
        mean = total / self.nt_samples
        return mean if self.kind == "smoothgrad" else squares / self.nt_samples - mean * mean


class VarGrad(NoiseTunnel):
    kind = "vargrad"


GRADIENT_METHODS: dict[str, Callable[..., Gradients]] = {
    **BASES,
    "smoothgrad": NoiseTunnel,
    "vargrad": VarGrad,
    "gradient_shap": GradientShap,
}
