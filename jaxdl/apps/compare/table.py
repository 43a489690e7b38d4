"""The comparison table: one row per run, one row per configuration over its seeds (mean ± std)."""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from typing import Sequence

import numpy as np

from jaxdl.apps.compare.records import SEED_KEY, RunRecord

METRICS = ("best val/accuracy", "best val/loss", "final val/accuracy", "final train/loss", "test/accuracy", "test/loss")


def lower_is_better(metric: str) -> bool:
    return "loss" in metric or metric == "wall_s"


def varying_keys(records: Sequence[RunRecord]) -> list[str]:
    """Override keys whose value differs between runs (the sweep's axes), in first-seen order."""
    keys: list[str] = []
    for record in records:
        keys += [k for k in record.overrides if k not in keys]
    return [k for k in keys if len({r.overrides.get(k, "") for r in records}) > 1]


def common_overrides(records: Sequence[RunRecord]) -> dict[str, str]:
    """Overrides every run shares, shown once above the table."""
    if not records:
        return {}
    shared = dict(records[0].overrides)
    return {k: v for k, v in shared.items() if all(r.overrides.get(k) == v for r in records)}


def sort_runs(records: Sequence[RunRecord], metric: str) -> list[RunRecord]:
    """Best first by `metric`; runs without it (failed, unfinished) last."""
    sign = 1.0 if lower_is_better(metric) else -1.0

    def key(record: RunRecord):
        value = record.wall_s if metric == "wall_s" else record.metric(metric)
        missing = value is None or math.isnan(value)
        return (missing, 0.0 if missing else sign * value)

    return sorted(records, key=key)


@dataclasses.dataclass
class Table:
    """Header and rows of plain values (str or float; NaN is empty)."""

    header: list[str]
    rows: list[list]


def runs_table(records: Sequence[RunRecord]) -> Table:
    keys = varying_keys(records)
    header = ["run", *keys, "status", *METRICS, "epochs", "wall_s", "error"]
    rows = [
        [
            r.name,
            *(r.overrides.get(k, "") for k in keys),
            r.status,
            *(r.metric(m) for m in METRICS),
            "" if math.isnan(r.metric("epochs")) else int(r.metric("epochs")),
            math.nan if r.wall_s is None else round(r.wall_s, 1),
            r.error,
        ]
        for r in records
    ]
    return Table(header, rows)


def seed_groups(records: Sequence[RunRecord]) -> dict[tuple[tuple[str, str], ...], list[RunRecord]]:
    """Runs grouped by their overrides except the seed, in first-seen order."""
    groups: dict[tuple[tuple[str, str], ...], list[RunRecord]] = {}
    keys = [k for k in varying_keys(records) if k != SEED_KEY]
    for record in records:
        groups.setdefault(tuple((k, record.overrides.get(k, "")) for k in keys), []).append(record)
    return groups


def mean_std(values: Sequence[float]) -> str:
    """'mean ± std' over the finite values (sample std; a lone value has none)."""
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return ""
    if len(finite) == 1:
        return f"{finite[0]:.4f}"
    return f"{np.mean(finite):.4f} ± {np.std(finite, ddof=1):.4f}"


def seeds_table(records: Sequence[RunRecord]) -> Table | None:
    """Mean ± std over seeds of each configuration, or None when no configuration ran several seeds."""
    groups = seed_groups(records)
    if all(len(runs) < 2 for runs in groups.values()):
        return None
    keys = [k for k in varying_keys(records) if k != SEED_KEY]
    header = [*keys, "seeds", "not completed", *METRICS]
    rows = []
    for group, runs in groups.items():
        done = [r for r in runs if r.status == "completed"]
        rows.append(
            [*(v for _, v in group), len(done), len(runs) - len(done), *(mean_std([r.metric(m) for r in done]) for m in METRICS)]
        )
    return Table(header, rows)


def cell(value) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}" if abs(value) >= 100 else f"{value:.4f}"
    return str(value)


def to_markdown(table: Table) -> str:
    escape = lambda text: cell(text).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(table.header) + " |", "|" + "---|" * len(table.header)]
    lines += ["| " + " | ".join(escape(v) for v in row) + " |" for row in table.rows]
    return "\n".join(lines) + "\n"


def to_csv(table: Table) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(table.header)
    writer.writerows([["" if isinstance(v, float) and math.isnan(v) else v for v in row] for row in table.rows])
    return out.getvalue()
