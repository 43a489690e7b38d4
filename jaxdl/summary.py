"""`summary.html`: one self-contained page per finished run (no network, no files beside it).

Curves, confusion matrix, per-class accuracy, misclassified examples, timings and the resolved config,
read from what the run directory already holds; images are inlined as data URIs so the page survives
being mailed or attached to a tracker run.
"""

from __future__ import annotations

import base64
import csv
import html
from pathlib import Path
from typing import Any, Mapping, Sequence

FIGURES = (
    ("Learning curves", "curves.png"),
    ("Confusion matrix", "eval/confusion_matrix.png"),
    ("Misclassified test images", "eval/misclassified.png"),
)
STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse}td,th{padding:2px 10px;border-bottom:1px solid #eee;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}img{max-width:100%}
pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:.85em}"""


def _image(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cell = lambda v: f'<td class="num">{v:.4f}</td>' if isinstance(v, float) else f"<td>{html.escape(str(v))}</td>"
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    return f"<table><tr>{head}</tr>" + "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows) + "</table>"


def render(run_dir: Path, records: Sequence[Mapping[str, Any]], summary: Mapping[str, Any]) -> str:
    """The page's HTML for the run in `run_dir` with its metric `records` and results `summary`."""
    run_dir = Path(run_dir)
    epochs = [r for r in records if "val/accuracy" in r]
    parts = [f"<h1>{html.escape(run_dir.name)}: test accuracy {summary.get('test/accuracy', float('nan')):.4f}</h1>"]
    facts = [(k, v) for k, v in summary.items() if not k.startswith("test/accuracy/") and not isinstance(v, dict)]
    parts.append(_table(["result", "value"], facts))
    if "stopped_early" in summary:
        parts.append(
            f"<p>Stopped early after epoch {summary['stopped_early']['epoch']}: {html.escape(summary['stopped_early']['reason'])}</p>"
        )
    for title, rel in FIGURES:
        if (run_dir / rel).exists():
            parts.append(f"<h2>{title}</h2>{_image(run_dir / rel, title)}")
    per_class = run_dir / "eval" / "per_class_accuracy.csv"
    if per_class.exists():
        rows = [(r["class"], float(r["accuracy"])) for r in csv.DictReader(per_class.read_text().splitlines())]
        parts.append("<h2>Per-class test accuracy</h2>" + _table(["class", "accuracy"], rows))
    timing = ["epoch", "train/loss", "train/accuracy", "val/loss", "val/accuracy", "time/epoch_s", "train/samples_per_s"]
    rows = [[r.get(k, "") if k == "epoch" else float(r.get(k, float("nan"))) for k in timing] for r in epochs]
    total = sum(r.get("time/epoch_s", 0.0) for r in epochs)
    parts.append(
        f"<h2>Epochs and timings</h2><p>{total:.1f} s of training over {len(epochs)} epoch(s)</p>" + _table(timing, rows)
    )
    config = run_dir / "config.yaml"
    if config.exists():
        parts.append(f"<h2>Config</h2><pre>{html.escape(config.read_text())}</pre>")
    body = "\n".join(parts)
    return f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(run_dir.name)}</title><style>{STYLE}</style></head><body>\n{body}\n</body></html>\n'


def write_summary(run_dir: Path, records: Sequence[Mapping[str, Any]], summary: Mapping[str, Any]) -> Path:
    path = Path(run_dir) / "summary.html"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(render(run_dir, records, summary))
    tmp.replace(path)
    return path
