"""A self-contained HTML explanation report: every image is an inline base64 PNG, so the one
file can be mailed, archived or attached to a paper's supplement as it is."""

from __future__ import annotations

import base64
import dataclasses
import html
import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

DISPLAY_PIXELS = 112


@dataclasses.dataclass
class ReportData:
    """What the report shows; images are float (B, H, W, C) in [0, 1], maps (B, H, W)."""

    title: str
    images: np.ndarray
    indices: list[int]
    labels: np.ndarray
    predictions: np.ndarray
    confidences: np.ndarray
    targets: np.ndarray
    class_names: list[str]
    maps: dict[str, np.ndarray]
    metrics: dict[str, dict[str, float]]
    sanity: dict[str, dict[str, list]]
    lime_top: np.ndarray | None = None      # (B, H, W) bool: LIME's top superpixels
    lime_r2: np.ndarray | None = None
    lime_stability: np.ndarray | None = None
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    config_yaml: str = ""


def png_data_uri(rgb: np.ndarray) -> str:
    """An (H, W, 3) float image in [0, 1] as a `data:image/png;base64,` URI."""
    buffer = io.BytesIO()
    plt.imsave(buffer, np.clip(rgb, 0, 1), format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _enlarge(image: np.ndarray) -> np.ndarray:
    """Nearest-neighbour upscaling so 8x8 and 28x28 inputs are visible."""
    factor = max(1, DISPLAY_PIXELS // max(image.shape[:2]))
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def as_rgb(image: np.ndarray) -> np.ndarray:
    return np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image[..., :3]


def overlay(image: np.ndarray, saliency: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The map in the `jet` colour map blended over the (grey-scaled) image."""
    scaled = (saliency - saliency.min()) / max(float(saliency.max() - saliency.min()), 1e-12)
    heat = plt.get_cmap("jet")(scaled)[..., :3]
    return (1 - alpha) * as_rgb(image) + alpha * heat


def _img(rgb: np.ndarray, caption: str = "") -> str:
    return f'<figure><img src="{png_data_uri(_enlarge(rgb))}"><figcaption>{html.escape(caption)}</figcaption></figure>'


def _curve_png(sanity: dict[str, list], method: str) -> str:
    fig, ax = plt.subplots(figsize=(4.5, 2.8))
    steps = ["trained", *sanity["layers"]]
    for key in ("spearman", "ssim"):
        ax.plot(range(len(steps)), [1.0, *sanity[key]], marker="o", label=key)
    ax.set_xticks(range(len(steps)), steps, rotation=30, ha="right", fontsize=7)
    ax.set_ylim(-0.3, 1.05)
    ax.set_title(f"{method}: cascading randomisation", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _metric_table(metrics: dict[str, dict[str, float]]) -> str:
    columns = sorted({k for row in metrics.values() for k in row})
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    rows = "".join(
        f"<tr><td>{html.escape(m)}</td>" + "".join(f"<td>{row.get(c, float('nan')):.4f}</td>" for c in columns) + "</tr>"
        for m, row in metrics.items())
    return f"<table><tr><th>method</th>{head}</tr>{rows}</table>"


STYLE = """body{font-family:sans-serif;margin:1.5em;max-width:1400px}figure{display:inline-block;margin:4px;text-align:center}
figcaption{font-size:11px;max-width:130px}table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}
pre{background:#f5f5f5;padding:8px;font-size:12px}.row{border-bottom:1px solid #ddd;padding:6px 0}"""


def render(data: ReportData) -> str:
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(data.title)}</title><style>{STYLE}</style></head><body>",
             f"<h1>{html.escape(data.title)}</h1>",
             "<h2>Faithfulness</h2><p>Deletion AUC (lower is better), insertion AUC (higher), ROAD MoRF (lower), LeRF (higher), "
             "gap = LeRF - MoRF (higher); target-class probability, mean over the images below. "
             "<code>random</code> and <code>sobel</code> are baselines a method must beat.</p>",
             _metric_table(data.metrics)]
    if data.timings:
        parts.append("<p>Seconds per call (whole batch, first call includes compilation): "
                     + ", ".join(f"{m} {t:.2f}" for m, t in data.timings.items()) + "</p>")
    if data.sanity:
        parts.append("<h2>Sanity check: model-parameter randomisation</h2><p>Similarity of each map to the trained model's "
                     "map as layers are re-initialised from the top; a faithful method falls towards 0.</p>")
        parts += [f'<img src="{_curve_png(s, m)}">' for m, s in data.sanity.items()]
    if data.lime_stability is not None:
        parts.append(f"<p>LIME stability: mean top-5 superpixel agreement across seeds {np.mean(data.lime_stability):.3f}</p>")
    parts.append("<h2>Images</h2>")
    for i, index in enumerate(data.indices):
        image = data.images[i]
        name = lambda c: data.class_names[int(c)] if int(c) < len(data.class_names) else str(int(c))
        truth = f"true {name(data.labels[i])}, " if int(data.labels[i]) >= 0 else ""  # photos have no label
        figures = [_img(as_rgb(image), f"#{index} {truth}predicted {name(data.predictions[i])} "
                                       f"({data.confidences[i]:.2f}); explained {name(data.targets[i])}")]
        figures += [_img(overlay(image, maps[i]), method) for method, maps in data.maps.items()]
        if data.lime_top is not None:
            figures.append(_img(as_rgb(image) * (0.25 + 0.75 * data.lime_top[i][..., None]), f"LIME top superpixels, R2 {data.lime_r2[i]:.2f}"))
        parts.append(f"<div class='row'>{''.join(figures)}</div>")
    parts.append(f"<h2>Reproduce</h2><pre>{html.escape(data.config_yaml)}</pre></body></html>")
    return "\n".join(parts)


def write_report(data: ReportData, path: Path) -> Path:
    path.write_text(render(data))
    return path
