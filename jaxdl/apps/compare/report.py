"""Write a comparison as Markdown, CSV and HTML, and the top runs as terminal lines."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from jaxdl.apps.compare import html
from jaxdl.apps.compare.records import RunRecord
from jaxdl.apps.compare.table import cell, common_overrides, runs_table, seeds_table, sort_runs, to_csv, to_markdown, varying_keys

REPORT_NAMES = {"markdown": "comparison.md", "csv": "comparison.csv", "html": "comparison.html"}


def _intro(records: Sequence[RunRecord]) -> str:
    counts = {s: sum(r.status == s for r in records) for s in sorted({r.status for r in records})}
    shared = " ".join(f"{k}={v}" for k, v in common_overrides(records).items())
    text = f"{len(records)} runs: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + "."
    return text + (f" Every run: {shared}." if shared else "")


def failures(records: Sequence[RunRecord]) -> list[str]:
    """'name: error' of every run that failed."""
    return [f"{r.name}: {r.error or 'failed'}" for r in records if r.status == "failed"]


def write_reports(records: Sequence[RunRecord], out_dir: Path, sort_by: str, notes: Sequence[str] = ()) -> dict[str, Path]:
    """comparison.md, comparison.csv and comparison.html in `out_dir`, runs best first by `sort_by`;
    `notes` (e.g. Optuna's best trial) follow the introduction."""
    out_dir.mkdir(parents=True, exist_ok=True)
    ordered = sort_runs(records, sort_by)
    runs, seeds = runs_table(ordered), seeds_table(records)
    intro = " ".join([_intro(records), *(f"{note}." for note in notes)])
    markdown = [f"# Comparison of {len(records)} runs\n", intro + f" Sorted by {sort_by}.\n", "## Runs\n", to_markdown(runs)]
    if seeds is not None:
        markdown += ["## Configurations over seeds (mean ± std)\n", to_markdown(seeds)]
    if failures(records):
        markdown += ["## Failed runs\n", "".join(f"- {line}\n" for line in failures(records))]
    paths = {kind: out_dir / name for kind, name in REPORT_NAMES.items()}
    paths["markdown"].write_text("\n".join(markdown))
    paths["csv"].write_text(to_csv(runs))
    paths["html"].write_text(html.page("jaxdl comparison", intro, runs, [r.status for r in ordered], seeds, ordered))
    return paths


def top_lines(records: Sequence[RunRecord], sort_by: str, count: int) -> list[str]:
    """The best `count` runs by `sort_by`, one line each, for the terminal."""
    lines, keys = [], varying_keys(records)
    for rank, record in enumerate(sort_runs(records, sort_by)[:count], 1):
        value = record.wall_s if sort_by == "wall_s" else record.metric(sort_by)
        overrides = " ".join(f"{k}={record.overrides.get(k, '')}" for k in keys)
        lines.append(
            f"{rank:>3}. {sort_by} {cell(value if value is not None else float('nan')) or '-':>8}  "
            f"[{record.status}] {record.name}  {overrides}"
        )
    return lines
