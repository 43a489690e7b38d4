"""`jaxdl-compare PATH...`: compare the runs of sweeps or any run directories.

    jaxdl-compare multirun/2026-11-25_15-30-00
    jaxdl-compare runs/digits-lenet5 multirun/2026-11-25_15-30-00 --out comparison --top 10

Writes comparison.md, comparison.csv and comparison.html (sortable columns, learning
curves of every run overlaid) and prints the best runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from jaxdl.apps.compare.records import RunRecord, find_runs, optuna_best
from jaxdl.apps.compare.report import failures, top_lines, write_reports
from jaxdl.apps.compare.table import METRICS
from jaxdl.errors import ConfigError, report_user_errors

SORT_CHOICES = (*METRICS, "wall_s")


def default_sort(records: Sequence[RunRecord]) -> str:
    """The sweeps' objective (trainer.objective, best over epochs) when the table has it."""
    objective = next((r.objective for r in records if r.objective), None)
    return f"best {objective}" if f"best {objective}" in METRICS else "best val/accuracy"


def compare(paths: Sequence[str | Path], out: Path | None = None, sort_by: str | None = None, top: int = 5) -> dict[str, Path]:
    """Find the runs under `paths`, write the reports (by default into the one PATH given) and print the top runs."""
    if sort_by is not None and sort_by not in SORT_CHOICES:
        raise ConfigError(f"unknown sort metric '{sort_by}'; valid: {', '.join(SORT_CHOICES)}")
    records = find_runs(paths)
    sort_by = sort_by or default_sort(records)
    out = out or (Path(paths[0]) if len(paths) == 1 else Path("comparison"))
    notes = optuna_best(paths)
    written = write_reports(records, out, sort_by, notes)
    print(f"{len(records)} runs; top {min(top, len(records))} by {sort_by}:")
    print("\n".join(top_lines(records, sort_by, top) + notes))
    for line in failures(records):
        print(f"failed: {line}")
    print("reports: " + ", ".join(str(p) for p in written.values()))
    return written


@report_user_errors
def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="jaxdl-compare", description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="+", help="multirun directories, run directories or directories holding them")
    parser.add_argument(
        "--out", type=Path, help="where to write comparison.{md,csv,html} (default: the one PATH, else ./comparison)"
    )
    parser.add_argument("--sort", help=f"metric to rank by: {', '.join(SORT_CHOICES)} (default: the objective)")
    parser.add_argument("--top", type=int, default=5, help="how many runs to print (default 5)")
    args = parser.parse_args(argv)
    compare(args.paths, args.out, args.sort, args.top)


if __name__ == "__main__":
    main()
