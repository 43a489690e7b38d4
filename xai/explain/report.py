"""A self-contained HTML explanation report: every image is an inline base64 PNG, so the one
file can be mailed, archived or attached to a paper's supplement as it is.

What a reviewer needs to read it without being misled: what was explained (model, data, split,
images, resolved target layer, checkpoint step), how to re-run it (the exact command), which way
each metric is better and which method is best, the baselines apart from the methods, how many
maps each mean covers, and colour scales that are fixed, centred and labelled.
"""

from __future__ import annotations

import dataclasses
import html
import math
from pathlib import Path

import numpy as np

from xai.explain.metrics import empty_maps
from xai.explain.report_figures import SCALES, as_rgb, colour_bar, enlarge, limits, overlay, png_data_uri, sanity_plot
from xai.explain.sequences import is_signal, signal_figure

TITLES = {
    "gradcam": "Grad-CAM",
    "gradcam++": "Grad-CAM++",
    "hirescam": "HiResCAM",
    "xgradcam": "XGradCAM",
    "layercam": "LayerCAM",
    "scorecam": "Score-CAM",
    "eigencam": "Eigen-CAM",
    "guided_gradcam": "Guided Grad-CAM",
    "lime": "LIME",
    "occlusion": "Occlusion",
    "shap": "SHAP (partition)",
    "integrated_gradients": "Integrated Gradients",
    "saliency": "Saliency (signed gradient)",
    "input_x_gradient": "Input × Gradient",
    "smoothgrad": "SmoothGrad",
    "vargrad": "VarGrad",
    "gradient_shap": "GradientSHAP",
    "attention_rollout": "Attention rollout",
    "random": "random map",
    "sobel": "Sobel edge map",
}

# (metric key, column title, better direction): the table's fixed column order. "→ 0": closest to zero is best
# (a map that still correlates with the trained one, either way round, did not follow the weights).
COLUMNS = [
    ("deletion_auc", "Deletion AUC", "↓"),
    ("insertion_auc", "Insertion AUC", "↑"),
    ("road_morf", "ROAD MoRF", "↓"),
    ("road_lerf", "ROAD LeRF", "↑"),
    ("road_gap", "ROAD gap (LeRF − MoRF)", "↑"),
    ("sanity_spearman_final", "Spearman after randomising all layers", "→ 0"),
    ("lime_r2", "LIME R²", "↑"),
    ("lime_top5_agreement", "LIME top-5 agreement across seeds", "↑"),
    ("completeness_gap_max", "IG completeness gap (largest, relative)", "↓"),
]


@dataclasses.dataclass
class ReportData:
    """What the report shows; images are float (B, H, W, C) in [0, 1], maps (B, H, W).

    `header` holds label -> value lines shown under the title (model, split, target layer, ...);
    `signed` names the methods whose maps are signed; `notes` are warnings shown above the table.
    """

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
    lime_top: np.ndarray | None = None  # (B, H, W) bool: LIME's top superpixels
    lime_r2: np.ndarray | None = None
    lime_stability: np.ndarray | None = None
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    header: dict[str, str] = dataclasses.field(default_factory=dict)
    command: str = ""
    config_yaml: str = ""
    signed: frozenset[str] = frozenset({"lime", "occlusion", "shap"})
    baselines: tuple[str, ...] = ("random", "sobel")
    scale: str = "per_method"
    notes: list[str] = dataclasses.field(default_factory=list)
    sections: list[str] = dataclasses.field(default_factory=list)  # HTML shown after the faithfulness table


def title(name: str) -> str:
    return TITLES.get(name, name)


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def best_per_column(metrics: dict[str, dict[str, float]], baselines: tuple[str, ...]) -> dict[str, str]:
    """Column key -> the best method (baselines excluded), where at least two methods have a value."""
    best = {}
    for key, _, direction in COLUMNS:
        scored = {m: row[key] for m, row in metrics.items() if m not in baselines and _finite(row.get(key))}
        if len(scored) >= 2:
            rank = {"↓": scored.get, "↑": lambda m: -scored[m], "→ 0": lambda m: abs(scored[m])}[direction]
            best[key] = min(scored, key=rank)
    return best


def _cell(row: dict, key: str, is_best: bool) -> str:
    value = row.get(key)
    if not _finite(value):
        return "<td></td>"
    text = f"{value:.3f}"
    return f"<td class='best' title='best method in this column'>{text} ★</td>" if is_best else f"<td>{text}</td>"


def _used(row: dict) -> str:
    if "images_total" not in row:
        return "<td></td>"
    empty = f", {row['empty_maps']} empty" if row.get("empty_maps") else ""
    return f"<td>{row['images_used']} / {row['images_total']}{empty}</td>"


def metric_table(metrics: dict[str, dict[str, float]], baselines: tuple[str, ...]) -> str:
    """Methods first, then the baselines under their own heading; empty cells stay blank."""
    columns = [c for c in COLUMNS if any(_finite(row.get(c[0])) for row in metrics.values())]
    best = best_per_column(metrics, baselines)
    head = "".join(f"<th>{html.escape(t)}<br><span class='dir'>{d} better</span></th>" for _, t, d in columns)
    head = f"<tr><th>method</th>{head}<th>maps used<br><span class='dir'>non-empty / total</span></th></tr>"

    def rows(names):
        return "".join(
            f"<tr><td>{html.escape(title(m))}</td>"
            + "".join(_cell(metrics[m], k, best.get(k) == m) for k, _, _ in columns)
            + _used(metrics[m])
            + "</tr>"
            for m in names
        )

    methods = [m for m in metrics if m not in baselines]
    base = [m for m in baselines if m in metrics]
    width = len(columns) + 2
    parts = [f"<table class='metrics'><thead>{head}</thead><tbody>{rows(methods)}</tbody>"]
    if base:
        parts.append(
            f"<tbody class='baselines'><tr><th colspan='{width}'>baselines: a method must beat these</th></tr>{rows(base)}</tbody>"
        )
    parts.append("</table>")
    return "".join(parts)


def _figure(uri: str, caption: str, css: str = "") -> str:
    return f"<figure class='{css}'><img src='{uri}' alt='{html.escape(caption)}'><figcaption>{html.escape(caption)}</figcaption></figure>"


def _empty_text(method: str, signed: frozenset[str]) -> str:
    return "empty: constant map" if method in signed else "empty: no positive evidence at this layer"


def colour_limits(maps: np.ndarray, signed: bool, scale: str) -> list[tuple[float, float]]:
    """Each image's colour limits: the method's over all images (`per_method`) or the image's own (`per_image`)."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    return [limits(maps, signed)] * len(maps) if scale == "per_method" else [limits(m, signed) for m in maps]


def image_grid(data: ReportData) -> str:
    """One row per image: the input, then every method's map under a colour bar per method."""
    per_image = data.scale == "per_image"
    head = ["<th>input</th>"]
    method_limits = {}
    for method, maps in data.maps.items():
        signed = method in data.signed
        method_limits[method] = colour_limits(maps, signed, data.scale)
        bar = colour_bar(*(limits(np.ones(1), signed) if per_image else method_limits[method][0]), signed, per_image)
        head.append(
            f"<th>{html.escape(title(method))}<br><img class='bar' src='{bar}' alt='colour bar of {html.escape(method)}'></th>"
        )
    if data.lime_top is not None:
        head.append("<th>LIME top-5 superpixels</th>")
    empty = {method: empty_maps(maps) for method, maps in data.maps.items()}
    name = lambda c: data.class_names[int(c)] if int(c) < len(data.class_names) else str(int(c))
    signal = is_signal(data.images)  # sequences: each map is a band of time-step attributions under the signal
    rows = []
    for i, index in enumerate(data.indices):
        image = data.images[i]
        truth = f"true {name(data.labels[i])}, " if int(data.labels[i]) >= 0 else ""  # photos have no label
        cells = [
            _figure(
                signal_figure(image) if signal else png_data_uri(enlarge(as_rgb(image))),
                f"#{index} {truth}predicted "
                f"{name(data.predictions[i])} ({data.confidences[i]:.2f}); explained {name(data.targets[i])}",
            )
        ]
        for method, maps in data.maps.items():
            signed = method in data.signed
            if empty[method][i]:
                picture = signal_figure(image) if signal else png_data_uri(enlarge(0.35 + 0.3 * as_rgb(image)))
                cells.append(_figure(picture, _empty_text(method, data.signed), "empty"))
                continue
            if signal:
                picture = signal_figure(image, maps[i], method_limits[method][i], signed)
            else:
                picture = png_data_uri(enlarge(overlay(image, maps[i], *method_limits[method][i], signed)))
            cells.append(_figure(picture, title(method)))
        if data.lime_top is not None:
            cells.append(
                _figure(
                    signal_figure(image, shade=data.lime_top[i])
                    if signal
                    else png_data_uri(enlarge(as_rgb(image) * (0.25 + 0.75 * data.lime_top[i][..., None]))),
                    f"R² {data.lime_r2[i]:.2f}",
                )
            )
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f"<table class='grid'><thead><tr>{''.join(head)}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


STYLE = """body{font-family:sans-serif;margin:1.5em;max-width:1500px;color:#222}
figure{margin:2px;text-align:center}figure.empty figcaption{color:#a33}
figcaption{font-size:11px;max-width:130px;margin:auto}table{border-collapse:collapse;margin:8px 0}
td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;vertical-align:top}th{background:#f3f3f3}
.dir{font-weight:normal;font-size:11px;color:#555}.best{font-weight:bold;background:#e6f4e6}
tbody.baselines td{color:#666;background:#fafafa;font-style:italic}tbody.baselines th{text-align:left;font-weight:normal;background:#eee}
table.grid td{border:none;padding:1px}img.bar{display:block;margin:auto}
dl.header{display:grid;grid-template-columns:max-content auto;gap:2px 12px;font-size:14px}dl.header dt{font-weight:bold}dl.header dd{margin:0}
.note{background:#fff4e0;border-left:4px solid #e0a030;padding:6px 10px;margin:8px 0}
pre{background:#f5f5f5;padding:8px;font-size:12px;white-space:pre-wrap;word-break:break-all}"""


def render(data: ReportData) -> str:
    header = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(str(v))}</dd>" for k, v in data.header.items())
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(data.title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(data.title)}</h1>",
        f"<dl class='header'>{header}</dl>",
    ]
    parts += [f"<p class='note'>{html.escape(note)}</p>" for note in data.notes]
    if data.metrics:
        parts += [
            "<h2>Faithfulness</h2><p>Target-class probability as the most (deletion, ROAD MoRF) or least (ROAD LeRF) "
            "salient pixels are removed, or as the most salient are revealed (insertion); mean over the images whose map is "
            "not empty. ★ marks the best method per column.</p>",
            metric_table(data.metrics, data.baselines),
        ]
    parts += data.sections
    if data.timings:
        parts.append(
            "<p>Seconds per call (whole batch, first call includes compilation): "
            + ", ".join(f"{html.escape(title(m))} {t:.2f}" for m, t in data.timings.items())
            + "</p>"
        )
    if data.sanity:
        parts.append(
            "<h2>Sanity check: model-parameter randomisation</h2><p>Similarity of each method's maps to its trained "
            "maps as layers are re-initialised from the output down; a method that explains the model falls towards 0.</p>"
        )
        for method, result in data.sanity.items():
            caption = (
                f"{title(method)}: {result.get('images_used', '?')} / {result.get('images_total', '?')} trained maps non-empty"
            )
            parts.append(f"<img src='{sanity_plot(result, caption)}' alt='sanity curve of {html.escape(method)}'>")
    if data.lime_stability is not None:
        parts.append(f"<p>LIME stability: mean top-5 superpixel agreement across seeds {np.mean(data.lime_stability):.3f}</p>")
    scale = (
        "one colour scale per method, shared by all images"
        if data.scale == "per_method"
        else "each map on its own colour scale (the bars show relative values)"
    )
    parts.append(
        f"<h2>Images</h2><p>Signed maps (red: for the class, blue: against, white: no effect) are centred at zero; "
        f"non-negative maps run from 0 (dark) up. {scale[0].upper() + scale[1:]}; CAM-family maps are scaled to [0, 1] per image by the method.</p>"
    )
    parts.append(image_grid(data))
    parts.append(
        f"<h2>Reproduce</h2><pre>{html.escape(data.command)}</pre>"
        f"<details><summary>resolved configuration</summary><pre>{html.escape(data.config_yaml)}</pre></details></body></html>"
    )
    return "\n".join(parts)


def write_report(data: ReportData, path: Path) -> Path:
    path.write_text(render(data))
    return path
