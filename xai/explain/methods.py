"""Explanation methods by name, each as `explainer(images, targets) -> (B, H, W) maps` with a `probe`.

Options come from the app's config (`explain.options.<method>`); unknown options are
one-line errors through jaxdl's `call_with_options`.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import numpy as np
from flax import nnx

from jaxdl.registry import Registry, call_with_options
from xai.explain.cam import CAM_METHODS
from xai.explain.gradients import GRADIENT_METHODS
from xai.explain.guided import GuidedGradCAM
from xai.explain.inputs import ExplainError
from xai.explain.lime import LimeImage, LimeResult
from xai.explain.metrics import empty_maps
from xai.explain.occlusion import Occlusion
from xai.explain.probe import Preprocess, Probe, layer_names
from xai.explain.relevance import GradientRelevance
from xai.explain.rollout import AttentionRollout
from xai.explain.shap_partition import PartitionShap
from xai.explain.tokens import cam_options, is_patch_model, patch_layer

METHODS: Registry[Callable[..., Any]] = Registry("explanation method")


class LimeMaps:
    """LIME as a map explainer; the last call's full result (weights, R^2, segments) stays in `result`."""

    def __init__(self, model: nnx.Module, preprocess: Preprocess | None = None, seed: int = 0, **options: Any):
        self.lime = call_with_options(LimeImage, options, "explanation method 'lime'", model=model, preprocess=preprocess)
        self.probe, self.seed = self.lime.probe, seed
        self.result: LimeResult | None = None

    def __call__(self, images: Any, targets: Any = None) -> np.ndarray:
        self.result = self.lime(images, targets, key=jax.random.key(self.seed))
        return self.result.maps


for _name, _cls in CAM_METHODS.items():
    METHODS.register(_name)(_cls)
METHODS.register("guided_gradcam")(GuidedGradCAM)
METHODS.register("lime")(LimeMaps)
METHODS.register("occlusion")(Occlusion)
METHODS.register("shap")(PartitionShap)
METHODS.register("attention_rollout")(AttentionRollout)
METHODS.register("gradient_relevance")(GradientRelevance)
for _name, _cls in GRADIENT_METHODS.items():
    METHODS.register(_name)(_cls)

LAYERED = set(CAM_METHODS) | {"guided_gradcam"}


SEEDED = {"lime", *GRADIENT_METHODS}  # methods with random draws: they get explain.seed
SIGNED = {"lime", "occlusion", "shap", *GRADIENT_METHODS} - {
    "vargrad"
}  # maps with meaningful negative values (evidence against the class)


def spatial_layers(model: nnx.Module, preprocess: Preprocess | None, images: Any) -> list[str]:
    """Submodules with a spatial (B, h, w, C) or sequence (B, T, C) output, in the order the forward pass calls them."""
    calls = Probe(model, layer_names(model), preprocess).calls(images[:1])
    return [name for name, shape in calls if len(shape) in (3, 4)]


def default_target_layer(model: nnx.Module, preprocess: Preprocess | None, images: Any) -> str:
    """A model's `features` method if it has one (its last spatial block), a ViT's last `norm1`, else the last module
    with a spatial output."""
    if is_patch_model(model):
        return patch_layer(model)
    if callable(getattr(type(model), "features", None)):
        return "features"
    candidates = spatial_layers(model, preprocess, images)
    if not candidates:
        raise ExplainError("no layer with a spatial or sequence output found; set explain.target_layer")
    return candidates[-1]


def suggest_layer(
    name: str,
    model: nnx.Module,
    preprocess: Preprocess | None,
    options: dict,
    images: Any,
    targets: Any,
    current: str,
    last: int = 4,
) -> tuple[str, float] | None:
    """The layer among the `last` spatial layers before the output whose maps of method `name` are
    empty least often, with that fraction; None if no layer beats `current`."""
    fractions = {}
    for layer in spatial_layers(model, preprocess, images)[-last:]:
        if layer != current:
            maps = np.asarray(build_method(name, model, preprocess, options, layer)(images, targets))
            fractions[layer] = float(empty_maps(maps).mean())
    if not fractions:
        return None
    best = min(fractions, key=fractions.get)
    return best, fractions[best]


def build_method(
    name: str, model: nnx.Module, preprocess: Preprocess | None, options: dict, target_layer: str | list[str] | None = None
) -> Any:
    """The explainer `name` with its config options; CAM methods also get the target layer(s) (ViT: and the token grid)."""
    factory = METHODS.get(name)
    fixed: dict[str, Any] = {"model": model, "preprocess": preprocess}
    if name in LAYERED:
        fixed["target_layers"] = target_layer
        options = cam_options(model, options)
    return call_with_options(factory, dict(options), f"explanation method '{name}'", **fixed)
