"""One Markdown table from several jaxdl-compress report.json files (for experiments/RESULTS.md).

python experiments/compress_table.py RUN/compress/*/report.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def row(report: dict) -> str:
    original, compressed = report["models"]
    r = report["ratios"]
    return (
        f"| {compressed['name']} | {original['accuracy']:.4f} | {compressed['accuracy']:.4f} | {r['accuracy_change_points']:+.2f} "
        f"| {compressed['parameters']:,} | {compressed['nonzeros']:,} | {r['bytes_on_disk']:.3f}x | {r['bytes_gzip']:.3f}x "
        f"| {r['speedup_batch1']:.2f}x / {r.get('speedup_min_batch1', float('nan')):.2f}x | {r['speedup_batch256']:.2f}x / {r.get('speedup_min_batch256', float('nan')):.2f}x |"
    )


def main(paths: list[str]) -> None:
    reports = [json.loads(Path(p).read_text()) for p in paths]
    print(
        "| recipe | float acc | compressed acc | change (pts) | params | nonzeros | bytes (raw) | bytes (gzip) "
        "| speedup batch 1 (median / min) | speedup batch 256 (median / min) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for report in reports:
        print(row(report))
    if reports:
        original = reports[0]["models"][0]
        print(
            f"\nfloat32 original: {original['parameters']:,} parameters, {original['bytes_on_disk']:,} bytes "
            f"({original['bytes_gzip']:,} gzip); machine: {reports[0]['machine']}"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
