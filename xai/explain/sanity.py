"""The model-parameter randomisation test (Adebayo et al. 2018, "Sanity checks for saliency maps").

Layers are re-initialised cascading from the output layer down to the input; after
each step the explanation is recomputed and compared with the trained model's map
by Spearman rank correlation and SSIM. A method that explains the model must
change as its weights are destroyed; one that only finds edges will not.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity

from xai.explain.metrics import empty_maps
from xai.explain.probe import Probe

Explain = Callable[[Any, Any], Any]


def parameter_layers(probe: Probe, images: jax.Array) -> list[str]:
    """Layers that own parameters, in the order the forward pass calls them."""
    model = nnx.merge(probe.fn.graphdef, probe.state)
    owners = [
        name
        for name, module in _named_modules(model)
        if any(isinstance(v, nnx.Param) for _, v in nnx.iter_graph(module) if not isinstance(v, nnx.Module))
    ]
    leaves = [n for n in owners if not any(o.startswith(n + ".") for o in owners)]
    return [name for name, _ in Probe(model, leaves, probe.fn.preprocess).calls(images[:1])]


def _named_modules(model: nnx.Module):
    return [(".".join(map(str, path)), m) for path, m in nnx.iter_modules(model) if path]


STD_FLOOR = 0.01  # the std drawn from for a tensor whose trained std is 0 (a bias that never moved from zero)


def randomise_layers(state: nnx.State, layers: list[str], key: jax.Array) -> nnx.State:
    """A copy of `state` whose parameters under `layers` are redrawn from N(0, std of the trained tensor).

    Keeping each tensor's own scale means a randomised layer feeds its successors activations of
    the trained magnitude, so what changes is the weights' structure, not their size. A tensor
    with zero std (constant) is drawn with `STD_FLOOR` instead, so it still changes."""
    prefixes = [tuple(int(p) if p.isdigit() else p for p in name.split(".")) for name in layers]
    flat = nnx.to_flat_state(state)
    out = []
    for i, (path, value) in enumerate(flat):
        if any(path[: len(p)] == p for p in prefixes) and isinstance(value, nnx.Param):
            array = value.get_value()
            std = jnp.std(array.astype(jnp.float32))
            scale = jnp.where(std > 0, std, STD_FLOOR)
            drawn = scale * jax.random.normal(jax.random.fold_in(key, i), array.shape, jnp.float32)
            if jnp.issubdtype(array.dtype, jnp.integer):  # quantized weights of a compressed checkpoint
                drawn = jnp.clip(jnp.round(drawn), jnp.iinfo(array.dtype).min, jnp.iinfo(array.dtype).max)
            value = value.replace(drawn.astype(array.dtype))
        out.append((path, value))
    return nnx.from_flat_state(out)


def map_similarity(original: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per image: Spearman rank correlation of |maps| and SSIM of the maps scaled to [0, 1].

    Both are NaN where either map is empty (constant): a constant map has no ranking to compare."""
    empty = empty_maps(original) | empty_maps(other)
    rho, ssim = [], []
    for a, b, skip in zip(np.asarray(original, np.float64), np.asarray(other, np.float64), empty):
        rho.append(float("nan") if skip else spearmanr(np.abs(a).ravel(), np.abs(b).ravel())[0])
        ssim.append(float("nan") if skip else _ssim(a, b))
    return np.asarray(rho), np.asarray(ssim)


def _ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two maps scaled to [0, 1], with the largest odd window up to 7 that fits (NaN for 1-D maps)."""
    window = min(7, *a.shape) // 2 * 2 + 1
    if window > min(a.shape):
        window -= 2
    if window < 3:
        return float("nan")
    scale = lambda m: (m - m.min()) / max(m.max() - m.min(), 1e-12)
    return float(structural_similarity(scale(a), scale(b), data_range=1.0, win_size=window))


def _mean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def randomisation_test(
    explain: Explain, probe: Probe, images: Any, targets: Any, key: jax.Array | int = 0, cascade: bool = True
) -> dict[str, list]:
    """Cascading re-initialisation from the top layer down; similarity of the maps after each step.

    `cascade=False` measures only the cascade's last step, every layer re-initialised (the same draw: each
    tensor's noise depends on its own position, not on the step), at 1/L of the cost on an L-layer model.

    `explain(images, targets)` must read its weights from `probe.state` (every explainer here does).
    Targets are fixed (pass the trained model's predictions) so only the weights change. The first
    point ("trained") is measured too: the maps recomputed with the trained weights (1 for a
    deterministic method). Means leave out images whose trained map is empty, and at each step the
    maps the randomised model leaves empty (`empty` counts them); a step where every map is out is NaN.
    """
    key = jax.random.key(key) if isinstance(key, int) else key
    images = probe.check(images)
    original = np.asarray(explain(images, targets))
    trained = probe.state
    layers = parameter_layers(probe, images)[::-1]
    result = {
        "layers": ["trained"],
        "spearman": [],
        "ssim": [],
        "empty": [],
        "images_used": int((~empty_maps(original)).sum()),
        "images_total": len(original),
    }

    def record(maps: np.ndarray) -> None:
        rho, ssim = map_similarity(original, maps)
        result["spearman"].append(_mean(rho))
        result["ssim"].append(_mean(ssim))
        result["empty"].append(int(empty_maps(maps).sum()))

    record(np.asarray(explain(images, targets)))
    try:
        for depth in range(1 if cascade else len(layers), len(layers) + 1):
            probe.state = randomise_layers(trained, layers[:depth], key)
            record(np.asarray(explain(images, targets)))
            result["layers"].append(layers[depth - 1])
    finally:
        probe.state = trained
    return result
