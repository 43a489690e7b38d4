"""The class-activation-map family, one small class per method, pytorch-grad-cam's call shape:

    maps = GradCAM(model, "conv2", preprocess=run.preprocess)(images, targets)   # (B, H, W) in [0, 1]

A whole call (forward, one vjp for every image's target, weighting, ReLU, bilinear
upsampling to the image size, min-max scaling, multi-layer averaging) is one jitted
function. Activations of rank 3 (B, T, C) are sequences and become a (B, 1, T, C)
grid, so Grad-CAM over time needs nothing special; token models pass
`reshape=token_grid()` to drop the class token and lay tokens out on a grid.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from xai.explain.inputs import ExplainError, check_targets
from xai.explain.probe import Preprocess, Probe, map_chunks, resolve_targets

EPS = 1e-7
Reshape = Callable[[jax.Array], jax.Array]


def token_grid(prefix_tokens: int = 1, height: int | None = None, width: int | None = None) -> Reshape:
    """Reshape for token models (ViT): drop the class/prefix tokens, lay the rest on an (h, w) grid."""

    def reshape(tokens: jax.Array) -> jax.Array:
        tokens = tokens[:, prefix_tokens:]
        h = height or int(math.isqrt(tokens.shape[1]))
        w = width or tokens.shape[1] // h
        return tokens.reshape(tokens.shape[0], h, w, tokens.shape[-1])

    return reshape


def as_grid(x: jax.Array) -> jax.Array:
    """Layer outputs as (B, h, w, C): sequences (B, T, C) become one row of T cells."""
    if x.ndim == 3:
        return x[:, None]
    if x.ndim != 4:
        raise ValueError(f"a CAM layer must output (B, h, w, C) or (B, T, C), got shape {x.shape}; pass reshape=")
    return x


def scale_maps(maps: jax.Array) -> jax.Array:
    """Min-max scale each map to [0, 1] (a constant map becomes zeros)."""
    lo = maps.min(axis=(1, 2), keepdims=True)
    hi = maps.max(axis=(1, 2), keepdims=True)
    return (maps - lo) / jnp.maximum(hi - lo, EPS)


def upsample(maps: jax.Array, size: tuple[int, int]) -> jax.Array:
    """Bilinear resize of (B, h, w) maps to the image size."""
    return jax.image.resize(maps, (maps.shape[0], *size), method="bilinear")


def upsample_align_corners(maps: jax.Array, size: tuple[int, int]) -> jax.Array:
    """Bilinear resize with corner pixels aligned (torch's UpsamplingBilinear2d): output i samples input i (in-1)/(out-1)."""
    if min(maps.shape[1:3]) < 2 or min(size) < 2:
        return upsample(maps, size)
    scale = jnp.array([(o - 1) / (i - 1) for i, o in zip(maps.shape[1:3], size)], jnp.float32)
    return jax.image.scale_and_translate(
        maps, (maps.shape[0], *size), (1, 2), scale, 0.5 - 0.5 * scale, method="linear", antialias=False
    )


class BaseCAM:
    """Shared machinery; a method only says how activations and gradients make a (B, h, w) map."""

    uses_gradients = True

    def __init__(
        self,
        model: nnx.Module,
        target_layers: str | Sequence[str],
        *,
        preprocess: Preprocess | None = None,
        relu: bool = True,
        upsample: bool = True,
        reshape: Reshape | None = None,
        output_index: int | None = None,
        score: str = "logit",
        batch_size: int = 1024,
    ):
        self.probe = Probe(model, target_layers, preprocess, output_index)
        self.relu, self.upsample, self.reshape, self.score = relu, upsample, reshape, score
        self.batch_size = batch_size
        self._jitted = jax.jit(self._maps)

    def __call__(self, images: Any, targets: Any = None) -> jax.Array:
        """(B, H, W) maps in [0, 1] for each image's target class (None: the predicted class)."""
        images = self.probe.check(images)
        targets = check_targets(targets, len(images), self.probe.num_classes)
        return self._jitted(self.probe.state, images, targets)

    def layer_map(self, acts: jax.Array, grads: jax.Array) -> jax.Array:
        raise NotImplementedError

    def _maps(self, state, images, targets):
        if self.uses_gradients:
            logits, acts, grads = self.probe._activations_and_grads(state, images, targets, self.score)
        else:
            logits, acts = self.probe.fn(state, images, None)
            grads = [None] * len(acts)
        targets = resolve_targets(targets, logits)
        per_layer = []
        for act, grad in zip(acts, grads):
            act = as_grid(self.reshape(act) if self.reshape else act).astype(jnp.float32)
            grad = None if grad is None else as_grid(self.reshape(grad) if self.reshape else grad).astype(jnp.float32)
            cam = self.layer_map(act, grad) if self.uses_gradients else self.activation_map(state, images, targets, act)
            cam = jnp.maximum(cam, 0) if self.relu else cam
            cam = upsample(cam, images.shape[1:3]) if self.upsample else cam
            per_layer.append(scale_maps(cam))
        if len(per_layer) == 1:
            return per_layer[0]
        return scale_maps(jnp.mean(jnp.stack(per_layer), axis=0))

    def activation_map(self, state, images, targets, act):
        raise NotImplementedError


def _spatial_sum(x: jax.Array) -> jax.Array:
    return x.sum(axis=(1, 2), keepdims=True)


class GradCAM(BaseCAM):
    """Selvaraju et al. 2017: channels weighted by their spatially averaged gradient."""

    def layer_map(self, acts, grads):
        return (acts * grads.mean(axis=(1, 2), keepdims=True)).sum(-1)


class HiResCAM(BaseCAM):
    """Draelos & Carin 2020: element-wise gradient x activation, provably faithful for the last conv layer."""

    def layer_map(self, acts, grads):
        return (acts * grads).sum(-1)


class GradCAMPlusPlus(BaseCAM):
    """Chattopadhay et al. 2018: pixel-wise weights from second and third powers of the gradient.

    The denominator's epsilon is pytorch-grad-cam's 1e-6, so the two agree to float precision.
    """

    eps = 1e-6

    def layer_map(self, acts, grads):
        g2, g3 = grads**2, grads**3
        alpha = g2 / (2 * g2 + _spatial_sum(acts) * g3 + self.eps)
        alpha = jnp.where(grads != 0, alpha, 0)
        weights = _spatial_sum(jnp.maximum(grads, 0) * alpha)
        return (acts * weights).sum(-1)


class XGradCAM(BaseCAM):
    """Fu et al. 2020: gradients weighted by the normalised activations."""

    def layer_map(self, acts, grads):
        weights = _spatial_sum(grads * acts / (_spatial_sum(acts) + EPS))
        return (acts * weights).sum(-1)


class LayerCAM(BaseCAM):
    """Jiang et al. 2021: positive gradients weight each activation element."""

    def layer_map(self, acts, grads):
        return (jnp.maximum(grads, 0) * acts).sum(-1)


class EigenCAM(BaseCAM):
    """Muhammad & Yeasin 2020: the activations projected on their first principal component (no gradients).

    The component is the first right singular vector of each image's centred (HW, C) activation
    matrix, from an exact SVD. A singular vector's sign is arbitrary (LAPACK's choice), so it is
    fixed here: the projection must agree with the channel-mean activation (ties: the vector's
    largest-magnitude entry is positive). Maps are then reproducible across backends.
    """

    uses_gradients = False

    def activation_map(self, state, images, targets, act):
        b, h, w, c = act.shape
        flat = act.reshape(b, h * w, c)
        centred = flat - flat.mean(axis=1, keepdims=True)
        _, _, vt = jnp.linalg.svd(centred, full_matrices=False)
        first = vt[:, 0]
        proj = jnp.einsum("bnc,bc->bn", centred, first)
        agreement = jnp.sum(proj * flat.mean(-1), axis=1, keepdims=True)
        largest = jnp.take_along_axis(first, jnp.argmax(jnp.abs(first), axis=-1, keepdims=True), axis=-1)
        sign = jnp.where(agreement != 0, jnp.sign(agreement), jnp.where(largest < 0, -1.0, 1.0))
        return (proj * sign).reshape(b, h, w)


class ScoreCAM(BaseCAM):
    """Wang et al. 2020: each channel, upsampled and min-max scaled to [0, 1], masks the image; the channel's
    weight is the increase of the target's softmax probability on that masked image over a black image
    (the paper's baseline, the image masked by zeros). The map is the ReLU of the weighted channel sum.
    Masked forward passes run `batch_size` at a time.

    `weighting="pytorch_grad_cam"` is that package's variant instead: a softmax over channels of the
    target's logit on each masked image (its weights vary far less across channels), masks upsampled
    with aligned corners as the package does.
    """

    uses_gradients = False
    WEIGHTINGS = ("increase", "pytorch_grad_cam")

    def __init__(self, model: nnx.Module, target_layers: str | Sequence[str], *, weighting: str = "increase", **options: Any):
        if weighting not in self.WEIGHTINGS:
            raise ExplainError(f"scorecam weighting must be one of {', '.join(self.WEIGHTINGS)}, got {weighting!r}")
        self.weighting = weighting
        super().__init__(model, target_layers, **options)

    def activation_map(self, state, images, targets, act):
        package = self.weighting == "pytorch_grad_cam"
        resize = upsample_align_corners if package else upsample
        masks = scale_maps(resize(jnp.moveaxis(act, -1, 1).reshape(-1, *act.shape[1:3]), images.shape[1:3]))
        b, c = act.shape[0], act.shape[-1]
        masks = masks.reshape(b, c, *images.shape[1:3])
        score = (lambda logits: logits) if package else jax.nn.softmax

        def channel_scores(state, args):
            image, channel = args
            masked = images[image] * masks[image, channel][..., None]
            return jnp.take_along_axis(score(self.probe.fn(state, masked, None)[0]), targets[image][:, None], 1)[:, 0]

        pairs = (jnp.repeat(jnp.arange(b), c), jnp.tile(jnp.arange(c), b))
        scores = map_chunks(channel_scores, state, pairs, self.batch_size, self.probe.devices).reshape(b, c)
        if package:
            weights = jax.nn.softmax(scores, axis=-1)
        else:
            baseline = score(self.probe.fn(state, jnp.zeros_like(images[:1]), None)[0])[0, targets]
            weights = scores - baseline[:, None]
        return jnp.einsum("bc,bhwc->bhw", weights, act)


CAM_METHODS: dict[str, type[BaseCAM]] = {
    "gradcam": GradCAM,
    "gradcam++": GradCAMPlusPlus,
    "hirescam": HiResCAM,
    "xgradcam": XGradCAM,
    "layercam": LayerCAM,
    "scorecam": ScoreCAM,
    "eigencam": EigenCAM,
}
