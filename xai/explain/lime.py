"""LIME for images and sequences in JAX (Ribeiro et al. 2016), the `lime` package's algorithm:

Bernoulli(0.5) superpixel samples (row 0 = all on) from an explicit PRNG key,
masked images built on the device and pushed through the model in large jitted
batches, the cosine-distance kernel `sqrt(exp(-d^2 / width^2))` and a weighted
ridge regression (alpha 1, intercept) solved in closed form. Given the same
segmentation and samples it returns the `lime.lime_image.LimeImageExplainer`
weights, intercept and R^2.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from xai.explain.inputs import ExplainError, check_targets
from xai.explain.probe import Preprocess, Probe, map_chunks, resolve_targets
from xai.explain.segmentation import segment_batch


@dataclasses.dataclass(frozen=True)
class LimeResult:
    """Per image: superpixel weights (padded to the batch's largest count), intercept, weighted R^2, map."""

    weights: np.ndarray  # (B, F)
    intercept: np.ndarray  # (B,)
    r2: np.ndarray  # (B,)
    segments: np.ndarray  # (B, H, W)
    num_features: np.ndarray  # (B,)
    targets: np.ndarray  # (B,)

    @property
    def maps(self) -> np.ndarray:
        """Each pixel gets its superpixel's weight: (B, H, W)."""
        return np.take_along_axis(self.weights[:, None, :], self.segments.reshape(len(self.segments), 1, -1), axis=2).reshape(
            self.segments.shape
        )

    def top_features(self, k: int) -> list[np.ndarray]:
        """The k superpixels with the largest positive weight, per image."""
        return [np.argsort(-w[:n])[:k] for w, n in zip(self.weights, self.num_features)]


def bernoulli_samples(key: jax.Array, num_images: int, num_samples: int, num_features: int) -> jax.Array:
    """(B, N, F) int32 on/off superpixel samples; row 0 of each image is all on (the image itself)."""
    samples = jax.random.bernoulli(key, 0.5, (num_images, num_samples, num_features)).astype(jnp.int32)
    return samples.at[:, 0].set(1)


def hidden_image(image: jax.Array, segments: jax.Array, num_features: int, hide_color: float | None) -> jax.Array:
    """What an "off" superpixel shows: its own mean colour (hide_color=None, lime's default) or a constant.
    A (1, T) signal's window would keep its level at its mean: there None means 0, the gradient methods' baseline."""
    if hide_color is not None or image.shape[0] == 1:
        return jnp.full_like(image, 0.0 if hide_color is None else hide_color)
    flat = segments.reshape(-1)
    sums = jax.ops.segment_sum(image.reshape(-1, image.shape[-1]), flat, num_features)
    counts = jax.ops.segment_sum(jnp.ones_like(flat, image.dtype), flat, num_features)
    return (sums / jnp.maximum(counts, 1)[:, None])[segments]


def cosine_kernel(samples: jax.Array, valid: jax.Array, width: float) -> jax.Array:
    """lime's weights: sqrt(exp(-d^2 / width^2)) with d the cosine distance of each sample to all-on."""
    on = (samples * valid).sum(-1).astype(jnp.float32)
    distance = jnp.where(on > 0, 1 - on / jnp.sqrt(jnp.maximum(on, 1) * valid.sum()), 1.0)
    return jnp.sqrt(jnp.exp(-(distance**2) / width**2))


def weighted_ridge(x: jax.Array, y: jax.Array, w: jax.Array, alpha: float) -> tuple[jax.Array, jax.Array, jax.Array]:
    """scikit-learn's `Ridge(alpha).fit(x, y, sample_weight=w)` in closed form: (coef, intercept, weighted R^2)."""
    x_mean = (w[:, None] * x).sum(0) / w.sum()
    y_mean = (w * y).sum() / w.sum()
    xc, yc = x - x_mean, y - y_mean
    gram = (xc * w[:, None]).T @ xc + alpha * jnp.eye(x.shape[1], dtype=x.dtype)
    coef = jnp.linalg.solve(gram, (xc * w[:, None]).T @ yc)
    intercept = y_mean - x_mean @ coef
    residual = y - (x @ coef + intercept)
    r2 = 1 - (w * residual**2).sum() / jnp.maximum((w * (y - y_mean) ** 2).sum(), 1e-30)
    return coef, intercept, r2


class LimeImage:
    """LIME over superpixels (images) or windows (sequences), many images per call.

    `score`: "softmax" (the probabilities lime explains, default) or "logit".
    """

    def __init__(
        self,
        model: nnx.Module,
        *,
        preprocess: Preprocess | None = None,
        num_samples: int = 1000,
        batch_size: int = 2048,
        kernel_width: float = 0.25,
        alpha: float = 1.0,
        hide_color: float | None = None,
        segmentation: str = "auto",
        segmentation_options: dict | None = None,
        score: str = "softmax",
    ):
        if num_samples < 2:
            raise ExplainError(f"LIME needs at least 2 samples per image, got num_samples={num_samples}")
        self.probe = Probe(model, (), preprocess)
        self.num_samples, self.batch_size = num_samples, batch_size
        self.kernel_width, self.alpha, self.hide_color, self.score = kernel_width, alpha, hide_color, score
        self.segmentation, self.segmentation_options = segmentation, dict(segmentation_options or {})
        self._fit = jax.jit(self._explain, static_argnames="num_features")

    def __call__(
        self,
        images: Any,
        targets: Any = None,
        key: jax.Array | int = 0,
        segments: np.ndarray | None = None,
        samples: np.ndarray | None = None,
    ) -> LimeResult:
        """Explain each image's target class; `segments` and `samples` (B, N, F) override the defaults."""
        images = self.probe.check(images)
        targets = check_targets(targets, len(images), self.probe.num_classes)
        if segments is None:
            segments = segment_batch(np.asarray(images), self.segmentation, **self.segmentation_options)
        segments = np.asarray(segments, np.int32).reshape(len(images), *images.shape[1:3])
        counts = segments.reshape(len(images), -1).max(-1) + 1
        num_features = int(counts.max())
        if samples is None:
            key = jax.random.key(key) if isinstance(key, int) else key
            samples = bernoulli_samples(key, len(images), self.num_samples, num_features)
        samples = jnp.asarray(samples, jnp.int32)
        if samples.shape[0] != len(images) or samples.shape[2] < num_features:
            raise ExplainError(
                f"samples must be (images, samples, features) = ({len(images)}, N, >= {num_features}), got {samples.shape}"
            )
        coef, intercept, r2, targets = self._fit(
            self.probe.state, images, targets, jnp.asarray(segments), jnp.asarray(counts), samples, num_features=samples.shape[2]
        )
        return LimeResult(*(np.asarray(a) for a in (coef, intercept, r2)), segments, counts, np.asarray(targets))

    def _scores(self, state, images, segments, fudged, samples):
        """The model's scores on every masked image, (B, N, classes), built and evaluated chunk by chunk."""
        b, n, _ = samples.shape

        def run(state, args):
            idx, z = args
            on = jnp.take_along_axis(z, segments[idx].reshape(len(idx), -1), axis=1).reshape(segments[idx].shape)
            masked = jnp.where(on[..., None] > 0, images[idx], fudged[idx])
            logits = self.probe.fn(state, masked, None)[0]
            return jax.nn.softmax(logits) if self.score == "softmax" else logits

        out = map_chunks(
            run, state, (jnp.repeat(jnp.arange(b), n), samples.reshape(b * n, -1)), self.batch_size, self.probe.devices
        )
        return out.reshape(b, n, -1)

    def _explain(self, state, images, targets, segments, counts, samples, num_features: int):
        fudged = jax.vmap(lambda im, seg: hidden_image(im, seg, num_features, self.hide_color))(images, segments)
        scores = self._scores(state, images, segments, fudged, samples)
        targets = resolve_targets(targets, scores[:, 0])
        valid = jnp.arange(num_features)[None, :] < counts[:, None]

        def fit(z, y, ok):
            x = jnp.where(ok, z, 1).astype(jnp.float32)  # padded features are constant: zero weight
            coef, intercept, r2 = weighted_ridge(x, y, cosine_kernel(z, ok, self.kernel_width), self.alpha)
            return jnp.where(ok, coef, 0.0), intercept, r2

        y = jnp.take_along_axis(scores, targets[:, None, None], axis=2)[..., 0]
        coef, intercept, r2 = jax.vmap(fit)(samples, y, valid)
        return coef, intercept, r2, targets


def topk_agreement(results: list[LimeResult], k: int = 5) -> np.ndarray:
    """Stability across seeds: per image, the mean pairwise overlap |A & B| / k of the top-k superpixels."""
    if len(results) < 2:
        raise ExplainError("the stability check needs at least two seeds")
    tops = [r.top_features(k) for r in results]
    per_image = []
    for i in range(len(results[0].weights)):
        pairs = itertools.combinations([set(t[i].tolist()) for t in tops], 2)
        per_image.append(np.mean([len(a & b) / k for a, b in pairs]))
    return np.asarray(per_image)


def lime_stability(
    explainer: LimeImage, images: Any, targets: Any = None, seeds: tuple[int, ...] = (0, 1, 2), k: int = 5
) -> tuple[list[LimeResult], np.ndarray]:
    """LIME with several seeds on the same segmentation, and the top-k agreement per image."""
    images = explainer.probe.check(images)
    segments = segment_batch(np.asarray(images), explainer.segmentation, **explainer.segmentation_options)
    results = [explainer(images, targets, key=seed, segments=segments) for seed in seeds]
    return results, topk_agreement(results, k)
