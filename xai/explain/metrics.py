"""Is a saliency map faithful to the model? Deletion/insertion AUC, ROAD, and baseline maps.

- Deletion / insertion (Petsiuk et al. 2018, RISE): rank pixels by saliency, remove
  them (deletion: to a constant substrate) or reveal them over a blurred copy
  (insertion; a (1, T) signal: over the substrate too, time step by time step) in equal steps, and take the trapezoid area under the target
  probability curve. Good maps: low deletion, high insertion.
- ROAD (Rong et al. 2022): remove the most (MoRF) or least (LeRF) relevant pixels
  at several fractions and fill them by noisy linear imputation (each removed pixel
  the weighted mean of its 8 neighbours, solved by Jacobi iterations, plus noise),
  which leaks no shape information through the mask. Good maps: low MoRF, high LeRF.
- Baselines to report beside every method: a random map and a Sobel edge map.
- Empty (constant) maps rank nothing: their "ranking" is raster order. `empty_maps` finds
  them and `mean_over_nonempty` leaves them out of a method's means.

Every curve for a batch of images is one jitted call.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from xai.explain.inputs import ExplainError, check_targets
from xai.explain.probe import Probe, map_chunks, resolve_targets


def _probabilities(probe: Probe, state, images):
    return jax.nn.softmax(probe.fn(state, images, None)[0])


def gaussian_blur(images: jax.Array, sigma: float) -> jax.Array:
    """Separable Gaussian blur of an NHWC batch (edge padding)."""
    radius = max(1, int(3 * sigma))
    taps = jnp.exp(-0.5 * (jnp.arange(-radius, radius + 1) / sigma) ** 2)
    taps = taps / taps.sum()
    padded = jnp.pad(images, ((0, 0), (radius, radius), (radius, radius), (0, 0)), mode="edge")
    h, w = images.shape[1:3]
    rows = sum(taps[i] * padded[:, i : i + h] for i in range(2 * radius + 1))
    return sum(taps[i] * rows[:, :, i : i + w] for i in range(2 * radius + 1))


def _rank_masks(saliency: jax.Array, fractions: jax.Array, most_relevant_first: bool = True) -> jax.Array:
    """(S, B, H, W) masks: True where a pixel is among the top (or bottom) `fraction` by saliency."""
    b, h, w = saliency.shape
    flat = saliency.reshape(b, -1)
    order = jnp.argsort(-flat if most_relevant_first else flat, axis=1)
    rank = jnp.zeros_like(order).at[jnp.arange(b)[:, None], order].set(jnp.arange(h * w)[None])
    counts = jnp.round(fractions * h * w).astype(jnp.int32)
    return (rank[None] < counts[:, None, None]).reshape(len(fractions), b, h, w)


def trapezoid_auc(curve: jax.Array) -> jax.Array:
    """Area under a curve sampled at equal steps over [0, 1] (last axis)."""
    n = curve.shape[-1] - 1
    return (curve.sum(-1) - 0.5 * (curve[..., 0] + curve[..., -1])) / n


class Faithfulness:
    """Deletion, insertion and ROAD curves of saliency maps for one model."""

    def __init__(
        self,
        probe: Probe,
        *,
        steps: int = 20,
        substrate: float = 0.0,
        blur_sigma: float | None = None,
        road_fractions: Sequence[float] = (0.1, 0.3, 0.5, 0.7, 0.9),
        road_noise: float = 0.01,
        road_iterations: int = 100,
    ):
        self.probe, self.steps, self.substrate, self.blur_sigma = probe, steps, substrate, blur_sigma
        self.road_fractions = jnp.asarray(road_fractions, jnp.float32)
        self.road_noise, self.road_iterations = road_noise, road_iterations
        self._curves = jax.jit(self._deletion_insertion)
        self._road = jax.jit(self._road_curves)

    def _prepare(self, images, saliency, targets):
        images = self.probe.check(images)
        saliency = jnp.asarray(saliency, jnp.float32)
        if saliency.shape != images.shape[:3]:
            raise ExplainError(f"saliency maps must be (B, H, W) = {tuple(images.shape[:3])}, got {tuple(saliency.shape)}")
        return images, saliency, check_targets(targets, len(images), self.probe.num_classes)

    def deletion_insertion(self, images: Any, saliency: Any, targets: Any = None) -> dict[str, np.ndarray]:
        """Per image: the deletion and insertion curves (steps + 1 points) and their AUCs."""
        images, saliency, targets = self._prepare(images, saliency, targets)
        deletion, insertion = self._curves(self.probe.state, images, saliency, targets)
        return {
            "deletion_curve": np.asarray(deletion),
            "insertion_curve": np.asarray(insertion),
            "deletion_auc": np.asarray(trapezoid_auc(deletion)),
            "insertion_auc": np.asarray(trapezoid_auc(insertion)),
        }

    def _deletion_insertion(self, state, images, saliency, targets):
        targets = resolve_targets(targets, self.probe.fn(state, images, None)[0])
        sigma = self.blur_sigma or max(images.shape[1:3]) / 10
        # a (1, T) signal is revealed over the baseline (0): a blurred signal keeps its shape at these lengths
        blurred = gaussian_blur(images, sigma) if images.shape[1] > 1 else jnp.full_like(images, self.substrate)
        masks = _rank_masks(saliency, jnp.linspace(0, 1, self.steps + 1))[..., None]

        def step(state, mask):
            deleted = jnp.where(mask[0], self.substrate, images)
            inserted = jnp.where(mask[0], images, blurred)
            probs = _probabilities(self.probe, state, jnp.concatenate([deleted, inserted]))
            picked = jnp.take_along_axis(probs, jnp.concatenate([targets, targets])[:, None], 1)[:, 0]
            return picked.reshape(1, 2, -1)

        curves = map_chunks(step, state, masks, 1)  # (steps + 1, 2, B)
        return curves[:, 0].T, curves[:, 1].T

    def road(self, images: Any, saliency: Any, targets: Any = None, key: jax.Array | int = 0) -> dict[str, np.ndarray]:
        """Per image: target probability after MoRF and LeRF removal at each fraction, their means and the gap."""
        images, saliency, targets = self._prepare(images, saliency, targets)
        key = jax.random.key(key) if isinstance(key, int) else key
        morf, lerf = self._road(self.probe.state, images, saliency, targets, key)
        morf, lerf = np.asarray(morf), np.asarray(lerf)
        return {
            "road_morf_curve": morf,
            "road_lerf_curve": lerf,
            "road_morf": morf.mean(-1),
            "road_lerf": lerf.mean(-1),
            "road_gap": lerf.mean(-1) - morf.mean(-1),
        }

    def _road_curves(self, state, images, saliency, targets, key):
        targets = resolve_targets(targets, self.probe.fn(state, images, None)[0])

        def curve(most_first, key):
            masks = _rank_masks(saliency, self.road_fractions, most_first)

            def step(state, args):
                mask, k = args
                filled = noisy_linear_imputation(images, mask[0], k[0], self.road_noise, self.road_iterations)
                probs = _probabilities(self.probe, state, filled)
                return jnp.take_along_axis(probs, targets[:, None], 1)[:, 0][None]

            return map_chunks(step, state, (masks, jax.random.split(key, len(masks))), 1).T

        k1, k2 = jax.random.split(key)
        return curve(True, k1), curve(False, k2)


# Weights of ROAD's linear imputation: direct neighbours 1/6, diagonal ones 1/12.
_NEIGHBOURS = [
    (-1, 0, 1 / 6),
    (1, 0, 1 / 6),
    (0, -1, 1 / 6),
    (0, 1, 1 / 6),
    (-1, -1, 1 / 12),
    (-1, 1, 1 / 12),
    (1, -1, 1 / 12),
    (1, 1, 1 / 12),
]


def noisy_linear_imputation(images: jax.Array, removed: jax.Array, key: jax.Array, noise: float, iterations: int) -> jax.Array:
    """Fill `removed` (B, H, W) pixels so each is the weighted mean of its in-image neighbours, plus Gaussian noise."""
    b, h, w, c = images.shape
    inside = jnp.pad(jnp.ones((h, w)), 1)
    weight_sum = sum(wt * inside[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy, dx, wt in _NEIGHBOURS)[None, :, :, None]
    mask = removed[..., None]
    start = jnp.where(mask, images.mean(axis=(1, 2), keepdims=True), images)

    def relax(_, x):
        padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        total = sum(wt * padded[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy, dx, wt in _NEIGHBOURS)
        return jnp.where(mask, total / weight_sum, images)

    filled = jax.lax.fori_loop(0, iterations, relax, start)
    return jnp.where(mask, filled + noise * jax.random.normal(key, images.shape), images)


def empty_maps(maps: Any, rtol: float = 1e-6) -> np.ndarray:
    """(B,) True where a map is constant (all its values within `rtol` of its largest magnitude):
    e.g. a Grad-CAM whose weighted sum is negative everywhere, so its ReLU is all zero."""
    flat = np.asarray(maps, np.float64).reshape(len(maps), -1)
    spread = flat.max(1) - flat.min(1)
    return spread <= rtol * np.abs(flat).max(1)


def mean_over_nonempty(scores: dict[str, np.ndarray], empty: np.ndarray) -> dict[str, float]:
    """Per-image scores averaged over the images whose map is not empty (NaN when every map is),
    with `images_used` and `images_total` so a reader sees what the mean covers."""
    used = ~np.asarray(empty, bool)
    means = {
        k: float(np.mean(np.asarray(v)[used])) if used.any() else float("nan")
        for k, v in scores.items()
        if not k.endswith("_curve")
    }
    return {**means, "images_used": int(used.sum()), "images_total": int(used.size)}


def random_baseline(shape: tuple[int, int, int], key: jax.Array | int = 0) -> np.ndarray:
    """Uniform random (B, H, W) maps: the floor every method must beat."""
    key = jax.random.key(key) if isinstance(key, int) else key
    return np.asarray(jax.random.uniform(key, shape))


def sobel_baseline(images: Any) -> np.ndarray:
    """Edge magnitude of the channel-mean image: a model-independent map that often looks plausible."""
    gray = jnp.asarray(images, jnp.float32).mean(-1)
    padded = jnp.pad(gray, ((0, 0), (1, 1), (1, 1)), mode="edge")
    h, w = gray.shape[1:]
    at = lambda dy, dx: padded[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
    gx = (at(-1, 1) + 2 * at(0, 1) + at(1, 1)) - (at(-1, -1) + 2 * at(0, -1) + at(1, -1))
    gy = (at(1, -1) + 2 * at(1, 0) + at(1, 1)) - (at(-1, -1) + 2 * at(-1, 0) + at(-1, 1))
    return np.asarray(jnp.hypot(gx, gy))
