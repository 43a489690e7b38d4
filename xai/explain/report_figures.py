"""The report's pictures as inline PNG data URIs: heatmap overlays with honest colour scales,
their colour bars, and the sanity-check curves.

Signed maps (LIME, occlusion, SHAP: negative = evidence against the class) use a diverging
colour map centred at zero, so white always means "no effect"; non-negative maps (the CAM
family) use a sequential one from zero. Limits are shared by every image of a method
(`per_method`, so intensities compare across images) or set per image (`per_image`).
"""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import Normalize  # noqa: E402

DISPLAY_PIXELS = 112
SIGNED_CMAP, SEQUENTIAL_CMAP = "RdBu_r", "inferno"
SCALES = ("per_method", "per_image")


def png_data_uri(rgb: np.ndarray) -> str:
    """An (H, W, 3) float image in [0, 1] as a `data:image/png;base64,` URI."""
    buffer = io.BytesIO()
    plt.imsave(buffer, np.clip(rgb, 0, 1), format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _figure_uri(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def enlarge(image: np.ndarray) -> np.ndarray:
    """Nearest-neighbour upscaling so 8x8 and 28x28 inputs are visible."""
    factor = max(1, DISPLAY_PIXELS // max(image.shape[:2]))
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def as_rgb(image: np.ndarray) -> np.ndarray:
    return np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image[..., :3]


def limits(maps: np.ndarray, signed: bool) -> tuple[float, float]:
    """Colour limits of a set of maps: symmetric about zero when signed, from zero otherwise."""
    top = float(np.max(np.abs(maps))) if signed else float(np.max(maps))
    top = top if top > 0 else 1.0
    return (-top, top) if signed else (0.0, top)


def overlay(image: np.ndarray, saliency: np.ndarray, vmin: float, vmax: float, signed: bool, alpha: float = 0.6) -> np.ndarray:
    """The map in its colour map over the grey-scaled image; values outside [vmin, vmax] saturate."""
    cmap = plt.get_cmap(SIGNED_CMAP if signed else SEQUENTIAL_CMAP)
    heat = cmap(Normalize(vmin, vmax, clip=True)(saliency))[..., :3]
    grey = as_rgb(image).mean(-1, keepdims=True)
    return (1 - alpha) * grey + alpha * heat


def colour_bar(vmin: float, vmax: float, signed: bool, per_image: bool) -> str:
    """A small horizontal colour bar; per-image scales are labelled relative to each image's maximum."""
    fig, ax = plt.subplots(figsize=(1.8, 0.55))
    bar = fig.colorbar(
        plt.cm.ScalarMappable(Normalize(vmin, vmax), plt.get_cmap(SIGNED_CMAP if signed else SEQUENTIAL_CMAP)),
        cax=ax,
        orientation="horizontal",
    )
    ticks = [vmin, 0.0, vmax] if signed else [vmin, vmax]
    labels = (["−max", "0", "+max"] if signed else ["0", "max"]) if per_image else [f"{t:.2g}" for t in ticks]
    bar.set_ticks(ticks, labels=labels, fontsize=7)
    fig.subplots_adjust(left=0.16, right=0.84, top=0.95, bottom=0.55)
    return _figure_uri(fig)


def sanity_plot(sanity: dict[str, list], title: str) -> str:
    """Similarity to the trained map after each cumulative randomisation step, from the measured first point."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    steps = sanity["layers"]
    values = []
    for key, label in (("spearman", "Spearman rank correlation of |map|"), ("ssim", "SSIM")):
        ys = np.asarray(sanity[key], float)
        values.append(ys)
        ax.plot(range(len(steps)), ys, marker="o", label=label)
    ax.axhline(0, color="grey", lw=0.8, ls="--")
    finite = np.concatenate(values)[np.isfinite(np.concatenate(values))]
    low, high = (min(finite.min(), 0.0), max(finite.max(), 1.0)) if finite.size else (0.0, 1.0)
    ax.set_ylim(low - 0.05, high + 0.05)
    ax.set_xticks(range(len(steps)), steps, rotation=30, ha="right", fontsize=7)
    ax.set_xlabel("layers re-initialised, cumulatively from the output", fontsize=8)
    ax.set_ylabel("similarity to trained map", fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _figure_uri(fig)
