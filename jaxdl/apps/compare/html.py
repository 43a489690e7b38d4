"""A self-contained HTML page: sortable tables and the learning curves of all runs overlaid (PNG inlined)."""

from __future__ import annotations

import base64
import html
import io
import math
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from jaxdl.apps.compare.records import SEED_KEY, RunRecord  # noqa: E402
from jaxdl.apps.compare.table import Table, cell, varying_keys  # noqa: E402

CURVES = ("val/accuracy", "val/loss", "train/loss")

_SORT_SCRIPT = """
document.querySelectorAll('table.sortable th').forEach((th, col) => th.addEventListener('click', () => {
  const body = th.closest('table').tBodies[0];
  const up = th.dataset.dir !== 'asc';
  th.closest('tr').querySelectorAll('th').forEach(h => delete h.dataset.dir);
  th.dataset.dir = up ? 'asc' : 'desc';
  const value = row => { const c = row.cells[col]; return c.dataset.v !== undefined ? c.dataset.v : c.textContent; };
  const rows = Array.from(body.rows).sort((a, b) => {
    const x = value(a), y = value(b), nx = parseFloat(x), ny = parseFloat(y);
    if (x === '' || y === '') return (x === '') - (y === '');
    const order = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y, undefined, {numeric: true});
    return up ? order : -order;
  });
  rows.forEach(r => body.appendChild(r));
}));
"""

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; }
table { border-collapse: collapse; margin-bottom: 2em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th { background: #f0f0f0; cursor: pointer; user-select: none; }
th[data-dir=asc]::after { content: ' \\25B2'; } th[data-dir=desc]::after { content: ' \\25BC'; }
td.text { text-align: left; } tr.failed td { color: #b00; } tr.running td { color: #a60; }
img { max-width: 100%; }
"""


def curves_png(records: Sequence[RunRecord]) -> bytes:
    """val/accuracy, val/loss and train/loss per epoch, one line per run."""
    keys = varying_keys(records)
    configs = [tuple(record.overrides.get(k, "") for k in keys if k != SEED_KEY) for record in records]
    colours = {config: f"C{i % 10}" for i, config in enumerate(dict.fromkeys(configs))}  # seeds share a colour
    fig, axes = plt.subplots(1, len(CURVES), figsize=(5 * len(CURVES), 4))
    for record, config in zip(records, configs):
        label = ", ".join(f"{k}={record.overrides.get(k, '')}" for k in keys) or record.name
        for ax, metric in zip(axes, CURVES):
            points = [(r["epoch"], r[metric]) for r in record.curves if metric in r and "epoch" in r]
            if points:
                ax.plot(*zip(*points), marker="o", markersize=3, label=label, alpha=0.8, color=colours[config])
    for ax, metric in zip(axes, CURVES):
        ax.set_title(metric)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=7, frameon=False)
        fig.subplots_adjust(bottom=0.18 + 0.04 * math.ceil(len(labels) / 4), wspace=0.25)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def _table_html(table: Table, row_classes: Sequence[str] = ()) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.header)
    body = []
    for i, row in enumerate(table.rows):
        cells = []
        for value in row:
            text = html.escape(cell(value))
            if isinstance(value, (int, float)):
                raw = "" if isinstance(value, float) and math.isnan(value) else repr(value)
                cells.append(f'<td data-v="{raw}">{text}</td>')
            else:
                cells.append(f'<td class="text">{text}</td>')
        css = f' class="{row_classes[i]}"' if i < len(row_classes) else ""
        body.append(f"<tr{css}>{''.join(cells)}</tr>")
    return f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def page(title: str, intro: str, runs: Table, statuses: Sequence[str], seeds: Table | None, records: Sequence[RunRecord]) -> str:
    """The whole page as one string; it needs no other file."""
    image = base64.b64encode(curves_png(records)).decode("ascii")
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{html.escape(intro)}</p>",
        "<h2>Runs</h2><p>Click a column to sort.</p>",
        _table_html(runs, statuses),
    ]
    if seeds is not None:
        parts += ["<h2>Configurations over seeds (mean ± std)</h2>", _table_html(seeds)]
    parts += ["<h2>Learning curves</h2>", f'<img alt="learning curves of all runs" src="data:image/png;base64,{image}">']
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body>{''.join(parts)}<script>{_SORT_SCRIPT}</script></body></html>\n"
    )
